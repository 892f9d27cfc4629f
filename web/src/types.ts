// The API's shapes this app reads (schema/openapi.yaml, schema/events.md).
export type Presence = "online" | "idle" | "offline";

export type Device = {
  id: string;
  name: string;
  platform: string;
  os_version: string | null;
  app_version: string | null;
  capabilities: string[];
  created_at: string;
  last_seen_at: string | null;
  trusts: string[];
  trusted_by: string[];
  is_current?: boolean;
  presence: Presence;
};

export type FileInfo = {
  id: string;
  name: string;
  mime: string;
  size: number;
  sha256: string;
  state: "uploading" | "available";
  sender_device_id: string;
  shared_with: string[];
  created_at: string;
  completed_at: string | null;
  deleted_at: string | null;
  restorable_until: string | null;
  /** the description sealed on the sending device; null for a file stored in the clear */
  sealed: string | null;
  /** a sealed file opened here (sealed-files.ts): what the server holds, and the description */
  stored?: { size: number; content_id: string; description: string };
};

export type ClipItem = {
  id: string;
  device_id: string;
  content_type: "text/plain" | "text/html" | "image/png";
  size: number;
  ciphertext?: string;
  file_id?: string;
  created_at: string;
};

export type ClipPrefs = { device_id: string; send: boolean; receive: boolean; history_size: number };

export type PendingLogin = {
  id: string;
  device_name: string;
  public_key: string;
  fingerprint_phrase: string;
  client_ip: string | null;
  created_at: string;
  expires_at: string;
};

export type HubEvent = {
  seq: number;
  at: number;
  event: string;
  target_device_id?: string;
  data: Record<string, unknown>;
};

/** A session as its owner's list shows it (`GET /account/sessions`; `udc_client::wire::AccountSession`). */
export type AccountSession = {
  id: string;
  device_id: string | null;
  device_name: string | null;
  client: string | null;
  client_ip: string | null;
  created_at: string;
  last_used_at: string;
  is_current: boolean;
};

/** One entry of the account's activity (`GET /account/activity`; `udc_client::wire::ActivityEntry`). */
export type ActivityEntry = {
  id: number;
  at: string;
  kind: string;
  device_id: string | null;
  device_name: string | null;
  client_ip: string | null;
  client: string | null;
  target_device_id: string | null;
  target_device_name: string | null;
  detail: { method?: string; device_name?: string; mode?: string; name?: string; passkey?: string };
};
