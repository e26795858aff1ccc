import { bodyLimit } from "hono/body-limit";
import { router } from "./lib/hono";
import { onError, problemResponse } from "./lib/problem";
import { accounts } from "./routes/accounts";
import { agent } from "./routes/agent";
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

const MAX_BODY = 1024 * 1024;

export const app = router();

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
app.route("/status", status);
app.route("/minions", minions);
app.route("/agent", agent);
app.route("/inventory", inventory);
app.route("/accounts", accounts);
app.route("/serviceAccounts", serviceAccounts);
app.route("/authentication", authentication);
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
