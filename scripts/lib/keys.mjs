// Fresh development secrets: an ES256 signing key (JWK) and an AES-256 key for secrets at rest.
import { exportJWK, generateKeyPair } from "jose";
import { randomBytes, randomUUID } from "node:crypto";

export async function freshSecrets() {
  const { privateKey } = await generateKeyPair("ES256", { extractable: true });
  const jwk = { ...(await exportJWK(privateKey)), kid: `dev-${randomUUID().slice(0, 8)}`, alg: "ES256" };
  return {
    JWT_PRIVATE_KEY: JSON.stringify(jwk),
    RUNNER_SECRETS_KEY: `k1:${randomBytes(32).toString("base64")}`,
  };
}
