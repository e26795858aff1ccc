import { bodyLimit } from "hono/body-limit";
import { contextStorage } from "hono/context-storage";
import { router } from "./lib/hono";
import { onError, problemResponse } from "./lib/problem";
import { requestContext } from "./lib/request-context";
import { accounts } from "./routes/accounts";
import { agent } from "./routes/agent";
import { audit } from "./routes/audit";
import { authentication } from "./routes/authentication";
import { downloads } from "./routes/downloads";
import { executions } from "./routes/executions";
import { inventory } from "./routes/inventory";
import { jobs } from "./routes/jobs";
import { metrics } from "./routes/metrics";
import { meta } from "./routes/meta";
import { minions } from "./routes/minions";
import { schedules } from "./routes/schedules";
import { serviceAccounts } from "./routes/service-accounts";
import { status } from "./routes/status";
import { ui } from "./routes/ui";
import { deliveries, webhooks } from "./routes/webhooks";

const MAX_BODY = 1024 * 1024;

export const app = router();

// First, so that every answer (a 413, a 404, an error) has a request id and a log line: the
// context is kept for the request (hono/context-storage) so that problem+json bodies name the id.
app.use("*", contextStorage(), requestContext);
app.use(
  "*",
  bodyLimit({
    maxSize: MAX_BODY,
    onError: () => problemResponse({ status: 413, title: "Payload Too Large", detail: `The body is larger than ${MAX_BODY} bytes.` }),
  }),
);

app.route("/", meta);
// Resource routers are mounted here, one module each (see worker/routes/).

// executions must be mounted before jobs (GET /jobs/{alias}/executions must win over /jobs/{alias}/{jobId}).
app.route("/jobs", executions);
app.route("/jobs", jobs);
app.route("/jobs", schedules);
app.route("/jobs", deliveries);
app.route("/webhooks", webhooks);
app.route("/status", status);
app.route("/minions", minions);
app.route("/agent", agent);
app.route("/inventory", inventory);
app.route("/accounts", accounts);
app.route("/serviceAccounts", serviceAccounts);
app.route("/authentication", authentication);
app.route("/audit", audit);
app.route("/", downloads);
app.route("/", metrics);
// The dashboard (/ui) and the API reference (/docs), from Workers Static Assets.
app.route("/", ui);

app.openAPIRegistry.registerComponent("securitySchemes", "bearer", { type: "http", scheme: "bearer", bearerFormat: "JWT" });
app.doc31("/openapi.json", {
  openapi: "3.1.0",
  info: { title: "Runner API", version: "1.0.0", description: "A job service for Ansible." },
  security: [{ bearer: [] }],
});

app.notFound(() => problemResponse({ status: 404, title: "Not Found", detail: "No such resource." }));
app.onError(onError);
