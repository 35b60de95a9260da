// Stand-in for Next.js' standalone server: `next build` with
// `output: "standalone"` writes .next/standalone/server.js, which the
// Dockerfile copies to /app/server.js.
require("../stand-ins/http-app.js").serve({ name: "next" });
