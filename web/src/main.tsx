import { render } from "preact";
import { App } from "./ui/App";
import "./style.css";

const root = document.getElementById("app");
if (root) render(<App />, root);

// The service worker caches the app shell only (public/sw.js): never an API answer or a key.
if ("serviceWorker" in navigator && location.protocol !== "file:") {
  navigator.serviceWorker.register("/sw.js").catch(() => undefined);
}
