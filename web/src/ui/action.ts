import { useState } from "preact/hooks";

/** An error's message as a person reads it. */
export function explain(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** A section's last error, and a runner that clears it, awaits an action and keeps its failure. */
export function useAction(): [string | null, (f: () => Promise<void>) => Promise<void>] {
  const [error, setError] = useState<string | null>(null);
  const act = async (f: () => Promise<void>) => {
    setError(null);
    try {
      await f();
    } catch (e) {
      setError(explain(e));
    }
  };
  return [error, act];
}
