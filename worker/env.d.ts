// Secrets are not in wrangler.toml, so `wrangler types` cannot see them: declared once here.
// (`npm run types` passes --env-file=/dev/null so that a local .dev.vars never leaks into the
// generated file: its output depends on wrangler.toml alone.)
interface __RunnerSecrets {
  /** Current signing key for Runner's own tokens: a private ES256 JWK (JSON) with a `kid`. */
  JWT_PRIVATE_KEY: string;
  /** Optional JSON array of older public JWKs still accepted (key rotation). */
  JWT_PREVIOUS_PUBLIC_KEYS?: string;
  /** Optional inline JWKS (JSON) of an external OIDC issuer, instead of OIDC_JWKS_URL. */
  OIDC_JWKS?: string;
  /** "kid:base64(32 bytes)[,kid:base64…]": the first encrypts, all decrypt (rotation). */
  RUNNER_SECRETS_KEY: string;
}
declare namespace Cloudflare {
  interface Env extends __RunnerSecrets {}
}
interface Env extends __RunnerSecrets {}
