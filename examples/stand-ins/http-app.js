// Stand-in for an HTTP app (an API, a Next.js server): what the examples run
// instead of your build output, so every example works on a fresh machine.
//
// It listens on $PORT, answers /health, proxies "/" to $UPSTREAM_URL when set
// (a frontend calling its API), exits 1 on /crash (to watch a restart), and
// stops on SIGTERM the way a well-behaved server does: close, then exit 0.
"use strict";
const http = require("node:http");

function serve({ name, port = Number(process.env.PORT || 3000), upstream = process.env.UPSTREAM_URL } = {}) {
  const instance = Number(process.env.SUPERVISOR_INSTANCE || 0);
  const label = `${name}[${instance}]`;
  const server = http.createServer(async (req, res) => {
    if (req.url === "/crash") {
      console.error(`${label}: crashing on request`);
      process.exit(1);
    }
    if (req.url === "/health") {
      res.end("ok\n");
      return;
    }
    let body = `${label} pid ${process.pid}\n`;
    if (upstream) {
      try {
        const answer = await fetch(upstream, { signal: AbortSignal.timeout(2000) });
        body += `upstream: ${(await answer.text()).trim()}\n`;
      } catch (err) {
        res.statusCode = 502;
        body += `upstream unreachable: ${err.cause?.code || err.name}\n`;
      }
    }
    console.log(`${label}: ${req.method} ${req.url} -> ${res.statusCode}`);
    res.end(body);
  });
  // Each instance has a port of its own (`port` in supervisor.toml).
  const listenPort = port;
  server.listen({ port: listenPort, host: process.env.HOST || "0.0.0.0" }, () => {
    console.log(`${label}: listening on port ${listenPort}`);
  });
  process.on("SIGTERM", () => {
    console.log(`${label}: SIGTERM, closing`);
    server.close(() => process.exit(0));
    server.closeAllConnections();
  });
  return server;
}

module.exports = { serve };
