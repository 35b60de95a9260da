// A one-off job: creates invite codes. Run it in the running container (the
// Dokploy/Coolify terminal) through supervisor, so it gets the same validated
// environment as the app:
//   supervisor exec -- node scripts/invite-generate.js --count 5
"use strict";
const crypto = require("node:crypto");
const { Client } = require("pg");

async function main() {
  const at = process.argv.indexOf("--count");
  const count = at === -1 ? 1 : Number(process.argv[at + 1]);
  if (!Number.isInteger(count) || count < 1 || count > 1000) {
    console.error("usage: invite-generate.js --count N   (1 to 1000)");
    process.exit(64);
  }
  const client = new Client({ connectionString: process.env.DATABASE_URL });
  await client.connect();
  try {
    for (let i = 0; i < count; i += 1) {
      const code = crypto.randomBytes(6).toString("base64url");
      await client.query("INSERT INTO invites (code) VALUES ($1)", [code]);
      console.log(code);
    }
    console.error(`created ${count} invite code(s)`);
  } finally {
    await client.end();
  }
}

main().catch((err) => {
  console.error(`invite-generate: ${err.message}`);
  process.exit(1);
});
