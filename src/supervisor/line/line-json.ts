// Runs in the supervisor. How every line-protocol reply is written: as PHP's
// json_encode() writes it with its default flags, which is what Badoo's
// Phprocksyd sent. A client that compares bytes, or one that is not UTF-8
// clean, must see no difference.

/** The characters JSON.stringify leaves raw but json_encode escapes: `/` and everything beyond ASCII. */
const PHP_ESCAPED = /[/\u0080-\uffff]/g;

function phpEscape(char: string): string {
  if (char === '/') return '\\/';
  // One code unit: a character outside the BMP is two of them (a surrogate
  // pair), escaped one by one, exactly as json_encode writes it. Lower-case
  // hex, as PHP's digit table has it.
  return `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`;
}

/**
 * `value` as PHP's json_encode($value) would write it: `/` as `\/`, every
 * non-ASCII character as `\uXXXX` (lower-case hex; surrogate pairs beyond
 * the BMP). The rest is what JSON.stringify already writes the same way:
 * `"` and `\` escaped, `\b \f \n \r \t` by name, other control characters
 * as `\u00XX`, DEL raw. The result is pure ASCII.
 *
 * JSON.stringify's output has `/` and non-ASCII characters only inside
 * strings, and never writes `\/` itself, so escaping them in its output is
 * the same as escaping them in each string. A lone surrogate (possible in a
 * JS string, impossible in PHP's UTF-8) is already `\udXXX` from
 * JSON.stringify.
 */
export function phpJsonEncode(value: unknown): string {
  return JSON.stringify(value).replace(PHP_ESCAPED, phpEscape);
}
