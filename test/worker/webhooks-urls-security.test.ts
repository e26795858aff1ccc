import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { app } from "../../worker/app";
import { callbackUrlProblem } from "../../worker/lib/callback-url";
import { token } from "./helpers";
import { playbookJob } from "./jobs-fixtures";

/**
 * Where a webhook may go, rule by rule: refused where the job is saved (a 400 naming the field)
 * and before each send (webhooks-delivery.test.ts). `dev` is what ALLOW_LOOPBACK_HTTP=true allows
 * on top (local development and tests); `prod` what is allowed without it.
 */
const ALIAS = "hooks-urls";
type Row = [url: string, prod: boolean, dev: boolean, why: string];
const TABLE: Row[] = [
  ["https://hooks.example.com/runner", true, true, "a public https URL"],
  ["https://hooks.example.com:8443/a?b=c#d", true, true, "port, query and fragment"],
  ["https://93.184.215.14/hook", true, true, "a public IPv4 literal"],
  ["https://[2606:4700:4700::1111]/hook", true, true, "a public IPv6 literal"],
  ["https://[64:ff9b::808:808]/", true, true, "NAT64 of a public address"],
  ["http://hooks.example.com/runner", false, false, "http to a public host"],
  ["ftp://hooks.example.com/x", false, false, "not http(s)"],
  ["hooks.example.com/x", false, false, "not absolute"],
  ["https://user:pass@hooks.example.com/x", false, false, "credentials"],
  ["https://token@hooks.example.com/x", false, false, "a user alone"],
  // loopback, in every spelling the URL parser accepts
  ["https://127.0.0.1/x", false, true, "loopback"],
  ["http://127.0.0.1:8080/x", false, true, "loopback http"],
  ["https://127.1/x", false, true, "loopback, short form"],
  ["https://0x7f000001/x", false, true, "loopback, hex"],
  ["https://2130706433/x", false, true, "loopback, one decimal"],
  ["https://0177.0.0.1/x", false, true, "loopback, octal"],
  ["https://127.255.255.254/x", false, true, "loopback, all of 127/8"],
  ["https://[::1]/x", false, true, "IPv6 loopback"],
  ["https://[0:0:0:0:0:0:0:1]/x", false, true, "IPv6 loopback, long form"],
  ["https://localhost/x", false, true, "localhost"],
  ["http://LOCALHOST./x", false, true, "localhost, upper case, trailing dot"],
  ["https://api.localhost/x", false, true, "a .localhost name"],
  // private, link-local, unique-local and other internal addresses: never, not even in development
  ["https://169.254.169.254/latest/meta-data/", false, false, "cloud metadata (link-local)"],
  ["https://0xa9fea9fe/", false, false, "cloud metadata, hex"],
  ["https://10.0.0.1/x", false, false, "private 10/8"],
  ["https://10.1/x", false, false, "private, short form"],
  ["https://172.16.0.1/x", false, false, "private 172.16/12"],
  ["https://172.31.255.255/x", false, false, "private 172.16/12, top"],
  ["https://192.168.1.1/x", false, false, "private 192.168/16"],
  ["https://100.64.0.1/x", false, false, "carrier-grade NAT"],
  ["https://0.0.0.0/x", false, false, "this host"],
  ["https://0/x", false, false, "this host, one digit"],
  ["https://224.0.0.1/x", false, false, "multicast"],
  ["https://255.255.255.255/x", false, false, "broadcast"],
  ["https://[::]/x", false, false, "IPv6 unspecified"],
  ["https://[fc00::1]/x", false, false, "unique local fc00::/7"],
  ["https://[fd12:3456::1]/x", false, false, "unique local fd00::/8"],
  ["https://[fe80::1]/x", false, false, "IPv6 link-local"],
  ["https://[ff02::1]/x", false, false, "IPv6 multicast"],
  ["https://[::ffff:127.0.0.1]/x", false, false, "IPv4-mapped loopback"],
  ["https://[::ffff:7f00:1]/x", false, false, "IPv4-mapped loopback, hex"],
  ["https://[::ffff:169.254.169.254]/x", false, false, "IPv4-mapped metadata"],
  ["https://[::ffff:8.8.8.8]/x", false, false, "IPv4-mapped, even public"],
  ["https://[::10.0.0.1]/x", false, false, "IPv4-compatible"],
  ["https://[64:ff9b::a00:1]/x", false, false, "NAT64 of a private address"],
  ["https://[2002:a00:1::]/x", false, false, "6to4 of a private address"],
  ["https://printer.local/x", false, false, ".local"],
  ["https://metadata.google.internal/x", false, false, ".internal"],
  ["https://internal/x", false, false, "internal itself"],
  ["https://hooks.internal./x", false, false, ".internal, trailing dot"],
];

describe("callback URL rules (security)", () => {
  it.each(TABLE)("%s: allowed %s, in local development %s (%s)", (url, prod, dev) => {
    expect(callbackUrlProblem(url, false) === null).toBe(prod);
    expect(callbackUrlProblem(url, true) === null).toBe(dev);
  });

  it("refuses each where the job is saved with a 400 naming the field, with and without ALLOW_LOOPBACK_HTTP", async () => {
    const t = await token([ALIAS], "admin");
    const save = async (url: string, allow: boolean) => {
      const res = await app.request(
        `/jobs/${ALIAS}`,
        {
          method: "POST",
          body: JSON.stringify(playbookJob({ callbacks: [{ url: "https://ok.example.com/x" }, { url, level: "RESULT" }] })),
          headers: { "content-type": "application/json", authorization: `Bearer ${t}` },
        },
        { ...env, ALLOW_LOOPBACK_HTTP: allow ? "true" : "false" },
      );
      return { status: res.status, json: (await res.json()) as any };
    };
    for (const [url, prod, dev] of TABLE) {
      for (const [allow, ok] of [
        [false, prod],
        [true, dev],
      ] as const) {
        const r = await save(url, allow);
        if (ok) expect(r.status, `${url} allow=${allow}`).toBe(200);
        else {
          expect(r.status, `${url} allow=${allow}`).toBe(400);
          expect(
            r.json.errors.map((e: { field: string }) => e.field),
            url,
          ).toEqual(["callbacks.1.url"]);
          // The message never echoes the URL (it may carry a token).
          expect(JSON.stringify(r.json)).not.toContain("pass@");
        }
      }
    }
  });
});
