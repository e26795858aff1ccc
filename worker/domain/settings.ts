/**
 * Account settings: how long a PENDING execution waits for an agent, and whether location-less
 * jobs may fall back to the shared pool (docs/agent-protocol.md, "Which work an agent gets").
 */
import { getSettingsRow, putSettingsRow, type SettingsRow } from "../db/settings";
import type { Actor } from "../schemas/audit";
import { recordAudit } from "./audit";
import { DEFAULT_PENDING_TIMEOUT_MINUTES, type AccountSettingsBody, type Settings } from "../schemas/settings";

export async function readSettings(env: Env, accountAlias: string): Promise<Settings> {
  return settingsOf(accountAlias, await getSettingsRow(env.DB, accountAlias));
}

/** The settings a stored row (null: none stored) means. */
export function settingsOf(accountAlias: string, row: SettingsRow | null): Settings {
  return {
    accountAlias,
    pendingTimeoutMinutes: row?.pending_timeout_minutes ?? DEFAULT_PENDING_TIMEOUT_MINUTES,
    sharedPoolFallback: row ? row.shared_pool_fallback === 1 : false,
  };
}

/** Members the body leaves out keep their current value; answers the settings as stored. */
export async function updateSettings(env: Env, accountAlias: string, body: AccountSettingsBody, actor: Actor): Promise<Settings> {
  const current = await readSettings(env, accountAlias);
  const next: Settings = {
    accountAlias,
    pendingTimeoutMinutes: body.pendingTimeoutMinutes ?? current.pendingTimeoutMinutes,
    sharedPoolFallback: body.sharedPoolFallback ?? current.sharedPoolFallback,
  };
  await putSettingsRow(
    env.DB,
    accountAlias,
    { pending_timeout_minutes: next.pendingTimeoutMinutes, shared_pool_fallback: next.sharedPoolFallback ? 1 : 0 },
    Date.now(),
  );
  await recordAudit(env, actor, {
    accountAlias,
    action: "accountSettings.changed",
    resource: { type: "account", id: accountAlias },
    details: { pendingTimeoutMinutes: next.pendingTimeoutMinutes, sharedPoolFallback: next.sharedPoolFallback },
  });
  return next;
}
