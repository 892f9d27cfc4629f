// What the page keeps between visits, in IndexedDB. Secrets (the refresh token, the account
// key, device cookies) are sealed with an AES-GCM key that WebCrypto generated non-extractable:
// the database's files alone (a backup, a copied profile) do not give them up. Script running
// in this page can still ask WebCrypto to open them (README, "Web app": what an XSS can do).
// Nothing is ever put in localStorage.

const DB = "udc";
const STORE = "kv";
const WRAP_KEY = "wrap-key";

let opening: Promise<IDBDatabase> | null = null;

function db(): Promise<IDBDatabase> {
  opening ??= new Promise((resolve, reject) => {
    const req = indexedDB.open(DB, 1);
    req.onupgradeneeded = () => req.result.createObjectStore(STORE);
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error ?? new Error("IndexedDB is unavailable"));
  });
  return opening;
}

function run<T>(mode: IDBTransactionMode, f: (s: IDBObjectStore) => IDBRequest): Promise<T> {
  return db().then(
    (d) =>
      new Promise<T>((resolve, reject) => {
        const tx = d.transaction(STORE, mode);
        const req = f(tx.objectStore(STORE));
        tx.oncomplete = () => resolve(req.result as T);
        tx.onerror = () => reject(tx.error ?? new Error("IndexedDB failed"));
      }),
  );
}

export function get<T>(key: string): Promise<T | undefined> {
  return run<T | undefined>("readonly", (s) => s.get(key));
}

export function put(key: string, value: unknown): Promise<void> {
  return run<void>("readwrite", (s) => s.put(value, key));
}

export function del(key: string): Promise<void> {
  return run<void>("readwrite", (s) => s.delete(key));
}

/** Every key that starts with `prefix`, with its value. */
export async function list<T>(prefix: string): Promise<[string, T][]> {
  const range = IDBKeyRange.bound(prefix, prefix + "\uffff");
  const [keys, values] = await Promise.all([
    run<IDBValidKey[]>("readonly", (s) => s.getAllKeys(range)),
    run<T[]>("readonly", (s) => s.getAll(range)),
  ]);
  return keys.map((k, i) => [String(k), values[i]]);
}

async function wrapKey(): Promise<CryptoKey> {
  const existing = await get<CryptoKey>(WRAP_KEY);
  if (existing) return existing;
  const key = await crypto.subtle.generateKey({ name: "AES-GCM", length: 256 }, false, ["encrypt", "decrypt"]);
  await put(WRAP_KEY, key);
  // Two tabs may have raced: whichever key was stored last is the one every tab uses.
  return (await get<CryptoKey>(WRAP_KEY)) ?? key;
}

type Sealed = { iv: Uint8Array; data: ArrayBuffer };

export async function putSecret(key: string, value: unknown): Promise<void> {
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const plain = new TextEncoder().encode(JSON.stringify(value));
  const data = await crypto.subtle.encrypt({ name: "AES-GCM", iv, additionalData: new TextEncoder().encode(key) }, await wrapKey(), plain);
  await put(key, { iv, data } satisfies Sealed);
}

export async function getSecret<T>(key: string): Promise<T | undefined> {
  const sealed = await get<Sealed>(key);
  if (!sealed) return undefined;
  try {
    const plain = await crypto.subtle.decrypt(
      { name: "AES-GCM", iv: sealed.iv as BufferSource, additionalData: new TextEncoder().encode(key) },
      await wrapKey(),
      sealed.data,
    );
    return JSON.parse(new TextDecoder().decode(plain)) as T;
  } catch {
    return undefined;
  }
}
