// Stand-in for Next.js' standalone server (`next build` with output: "standalone"
// writes server.js here). It renders by calling the API at UPSTREAM_URL.
require("../../../stand-ins/http-app.js").serve({ name: "web" });
