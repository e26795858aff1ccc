import { createRoute, z } from "@hono/zod-openapi";
import { router } from "../lib/hono";
import { notFound, problemResponses } from "../lib/problem";

/**
 * GET /downloads/{file}: the packed agent and CLI (`npm pack` of agent/ and cli/, put in
 * public/downloads/ by `npm start`, `npm test` and `npm run deploy`), served from the Worker's
 * static assets, so that any host installs them from the API itself:
 *   npm install -g <URL>/downloads/runner-agent.tgz
 * Only these names are served; everything else under /downloads is a 404.
 */
export const downloads = router();

const FILE = /^runner-(agent|cli)(-\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?)?\.tgz$/;

downloads.openapi(
  createRoute({
    method: "get",
    path: "/downloads/{file}",
    tags: ["Service"],
    summary: "The packed agent (runner-agent.tgz, runner-agent-<version>.tgz) and CLI (runner-cli.tgz, runner-cli-<version>.tgz)",
    security: [],
    request: { params: z.object({ file: z.string().openapi({ example: "runner-agent.tgz" }) }) },
    responses: {
      200: { description: "An npm package tarball", content: { "application/gzip": { schema: z.string().openapi({ format: "binary" }) } } },
      ...problemResponses(404),
    },
  }),
  async (c) => {
    const { file } = c.req.valid("param");
    const m = FILE.exec(file);
    if (!m) throw notFound("No such download: there are runner-agent.tgz and runner-cli.tgz (and their versioned names).");
    const conditional = c.req.header("if-none-match");
    const asset = await c.env.ASSETS.fetch(
      new Request(new URL(`/downloads/${file}`, c.req.url), { headers: conditional ? { "if-none-match": conditional } : {} }),
    );
    if (asset.status === 304) return new Response(null, { status: 304, headers: asset.headers });
    if (asset.status !== 200) throw notFound(`${file} is not on this server (the API was deployed without \`npm run deploy\`, which packs it).`);
    const headers = new Headers({ "content-type": "application/gzip", "content-disposition": `attachment; filename="${file}"` });
    const etag = asset.headers.get("etag");
    if (etag) headers.set("etag", etag);
    // The plain names follow each release; the versioned ones never change.
    headers.set("cache-control", m[2] ? "public, max-age=86400, immutable" : "no-cache");
    return new Response(asset.body, { status: 200, headers });
  },
);

/** What the registration-token answer tells the admin to run on the agent's host. */
export function agentInstallCommands(origin: string, token: string) {
  return {
    installCommand: `npm install -g ${origin}/downloads/runner-agent.tgz`,
    // The token by environment, never on the command line (where every process could read it).
    registerCommand: `RUNNER_TOKEN=${token} runner-agent register --url ${origin}`,
  };
}
