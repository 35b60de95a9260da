// Stand-in for the compiled app (`npm run build` writes dist/server.js).
require("../../stand-ins/http-app.js").serve({ name: "shop" });
