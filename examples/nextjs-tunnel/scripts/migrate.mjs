// Drizzle migrations with the postgres.js driver, run by supervisor while it
// holds the migration lock. (drizzle-kit's `migrate` does the same from
// drizzle.config.ts; this script keeps drizzle-kit out of the runtime image.)
import { drizzle } from "drizzle-orm/postgres-js";
import { migrate } from "drizzle-orm/postgres-js/migrator";
import postgres from "postgres";

// One connection; the migrator runs everything in one transaction.
const sql = postgres(process.env.DATABASE_URL, { max: 1, onnotice: () => {} });
try {
  await migrate(drizzle(sql), { migrationsFolder: new URL("../drizzle", import.meta.url).pathname });
  console.log("drizzle: up to date");
} catch (err) {
  console.error(`drizzle: migration failed: ${err.message}`);
  process.exitCode = 1;
} finally {
  await sql.end();
}
