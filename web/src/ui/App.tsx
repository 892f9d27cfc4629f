import { Component, type ComponentChildren } from "preact";
import { useEffect, useState } from "preact/hooks";
import { current, onSignedOut, restore, type Session } from "../api";
import { Home } from "./Home";
import { SignIn } from "./SignIn";

/** Whatever breaks below shows a message and a way on, never a blank page. */
class Boundary extends Component<{ children: ComponentChildren }, { error: string | null }> {
  state = { error: null as string | null };
  componentDidCatch(error: unknown) {
    this.setState({ error: error instanceof Error ? error.message : String(error) });
  }
  render() {
    if (!this.state.error) return this.props.children;
    return (
      <main class="center">
        <div class="card" role="alert">
          <h1>Something went wrong</h1>
          <p>The page hit a problem it could not handle: {this.state.error}</p>
          <button onClick={() => location.reload()}>Reload</button>
        </div>
      </main>
    );
  }
}

export function App() {
  const [session, setSession] = useState<Session | null | undefined>(undefined);
  const [notice, setNotice] = useState<string | null>(null);

  useEffect(() => {
    restore()
      .then(setSession)
      .catch(() => setSession(null));
    return onSignedOut((why) => {
      setNotice(why);
      setSession(null);
    });
  }, []);

  useEffect(() => {
    // The first screen a person can use is up (the benchmark's time to interactive).
    if (session !== undefined && performance.getEntriesByName("udc-interactive").length === 0) {
      performance.mark("udc-interactive");
    }
  }, [session]);

  return (
    <Boundary>
      {session === undefined ? (
        <main class="center">
          <p class="muted">Loading…</p>
        </main>
      ) : session ? (
        <Home key={session.deviceId} session={session} />
      ) : (
        <SignIn
          notice={notice}
          onSignedIn={() => {
            setNotice(null);
            setSession(current());
          }}
        />
      )}
    </Boundary>
  );
}
