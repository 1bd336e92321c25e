// Preloaded into every CLI run of the fuzz tier (node --require): on exit, writes the process's
// peak resident set size (VmHWM, kB) to the file named by UNICODE2_TEST_PEAK_RSS_FILE, so a test
// can hold a run to a memory ceiling with a figure measured by the kernel.
'use strict';
const fs = require('node:fs');
const target = process.env.UNICODE2_TEST_PEAK_RSS_FILE;
if (target) {
  process.on('exit', () => {
    const status = fs.readFileSync('/proc/self/status', 'utf8');
    const kb = /^VmHWM:\s+(\d+) kB$/m.exec(status);
    fs.writeFileSync(target, kb ? kb[1] : '');
  });
}
