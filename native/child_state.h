// Process-wide facts about where this process came from.
#pragma once

namespace forkd {

// True in a process created by our fork(): its V8 platform has no worker
// threads and its libuv loop was re-armed by uv_loop_fork().
extern bool g_is_forked_child;

}  // namespace forkd
