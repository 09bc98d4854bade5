// Bounded writes to a non-blocking fd (see write_all.cc).
#pragma once
#include <cstddef>

namespace forkd {

// CLOCK_MONOTONIC in milliseconds.
long long NowMs();

// Writes all of buf, waiting (bounded by `deadline`, in NowMs() time) when a
// non-blocking fd says EAGAIN. Returns the bytes written; stops early on an
// error (EPIPE: the reader is gone) or at the deadline.
size_t WriteAll(int fd, const char* buf, size_t len, long long deadline);

}  // namespace forkd
