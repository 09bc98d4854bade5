// A forked child's stdout flush and the prefork pool's job write both write to
// fds they must not block on forever: a reader that stopped (a stopped child,
// a full pipe nobody drains) would hang the writer. They wait for room, but
// only until a deadline.
#include "write_all.h"

#include <errno.h>
#include <poll.h>
#include <time.h>
#include <unistd.h>

namespace forkd {

long long NowMs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

size_t WriteAll(int fd, const char* buf, size_t len, long long deadline) {
  size_t done = 0;
  while (done < len) {
    ssize_t n = write(fd, buf + done, len - done);
    if (n > 0) {
      done += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) {
      long long left = deadline - NowMs();
      if (left <= 0) break;
      pollfd p{fd, POLLOUT, 0};
      poll(&p, 1, static_cast<int>(left));
      continue;
    }
    break;
  }
  return done;
}

}  // namespace forkd
