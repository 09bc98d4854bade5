// Runs in whichever test process requires it (a test file, a service
// fixture, a zygote's job). What each open fd of a process points at.
'use strict';
const fs = require('node:fs');

/** { fd: link target } for every fd `pid` has open now (default: this process). */
function fdTargets(pid = 'self') {
  const out = {};
  for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
    try {
      out[fd] = fs.readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      // Closed since the listing (for this process: the fd readdir used).
    }
  }
  return out;
}

module.exports = { fdTargets };
