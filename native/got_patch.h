// Rewrites the GOT slots through which loaded objects call a libc function.
#pragma once

namespace forkd {

// Points every JUMP_SLOT/GLOB_DAT relocation of `symbol` in the loaded objects
// at `replacement`: node's executable (where V8 lives) and other addons, never
// libc, the dynamic loader or this addon (whose own calls must reach libc).
// Returns the number of slots rewritten; *errors counts slots that could not be.
int PatchGotSlots(const char* symbol, void* replacement, int* errors);

}  // namespace forkd
