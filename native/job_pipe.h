#pragma once
#include <napi.h>

namespace forkd {
// JS: jobPipe() -> [readFd, writeFd], both close-on-exec; the write end is
// non-blocking, so writeSync's timeout holds against a reader that stopped.
Napi::Value JobPipe(const Napi::CallbackInfo& info);
// JS: readJobLine(fd) -> string | null | undefined. Blocks until a whole
// line arrives on fd and returns it without its newline; null at EOF before
// a newline; undefined when a signal waits for the event loop (call again
// after one turn of the loop: the bytes read so far are kept).
Napi::Value ReadJobLine(const Napi::CallbackInfo& info);
// JS: writeJobLine(fd, line, timeoutMs) -> true once line and its newline are
// all written; false if the reader is gone or stopped reading for timeoutMs.
Napi::Value WriteJobLine(const Napi::CallbackInfo& info);
}  // namespace forkd
