// Stand-in for a background worker or chat bot: logs a heartbeat, and with
// CRASH_EVERY set it exits 1 after that many seconds, to show restarts with
// backoff while the rest of the container keeps serving.
"use strict";

function work({ name, every = 5 } = {}) {
  const crashEvery = Number(process.env.CRASH_EVERY || 0);
  let beats = 0;
  console.log(`${name}: started (pid ${process.pid})`);
  const timer = setInterval(() => {
    beats += 1;
    console.log(`${name}: heartbeat ${beats}`);
  }, every * 1000);
  if (crashEvery > 0) {
    setTimeout(() => {
      console.error(`${name}: simulated crash`);
      process.exit(1);
    }, crashEvery * 1000);
  }
  process.on("SIGTERM", () => {
    clearInterval(timer);
    console.log(`${name}: SIGTERM, finishing the current job`);
    process.exit(0);
  });
}

module.exports = { work };
