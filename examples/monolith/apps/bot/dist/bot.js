// Stand-in for the chat-bot worker. Set CRASH_EVERY=5 to watch it crash and
// come back with backoff while /health reports the container degraded.
require("../../../../stand-ins/worker.js").work({ name: "bot" });
