// Prints a local-development token and nothing else:
//   npm run --silent token -- <accountAlias|*> [--role admin|user|viewer] [--sub NAME] [--ttl SECONDS]
import { importJWK, SignJWT } from "jose";
import { parseArgs } from "node:util";
import { ensureDevVars } from "./lib/dev-vars.mjs";

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { role: { type: "string", default: "admin" }, sub: { type: "string", default: "dev" }, ttl: { type: "string", default: "86400" } },
});
const alias = positionals[0];
if (!alias || !(alias === "*" || /^[A-Za-z0-9_-]{2,32}$/.test(alias)) || !["admin", "user", "viewer"].includes(values.role)) {
  console.error("usage: npm run --silent token -- <accountAlias|*> [--role admin|user|viewer] [--sub NAME] [--ttl SECONDS]");
  process.exit(2);
}
const vars = await ensureDevVars();
const jwk = JSON.parse(vars.JWT_PRIVATE_KEY);
const token = await new SignJWT({ accounts: alias === "*" ? "*" : [alias], role: values.role })
  .setProtectedHeader({ alg: "ES256", kid: jwk.kid })
  .setSubject(values.sub)
  .setIssuer(vars.RUNNER_ISSUER || "runner")
  .setIssuedAt()
  .setExpirationTime(`${Number(values.ttl)}s`)
  .sign(await importJWK(jwk, "ES256"));
process.stdout.write(token + "\n");
