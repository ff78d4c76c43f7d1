// Comfy Publisher: "Publish…" in the editor's File menu sends the open graph to Comfy Publisher, in a new tab that
// lands on its studio's Publish tab with the graph loaded (App Mode's inputs ticked). Refusals (not logged in, an
// editor the app does not know) are pages in that tab. Installed by Comfy Publisher itself into
// the engines it manages, or into your own ComfyUI: `python launch.py install-extension --comfyui-path DIR`.
import { app } from "../../scripts/app.js";

const COMMAND = "ComfyPublisher.Publish";
const APP_URL_SETTING = "ComfyPublisher.AppUrl";
const CONFIG_URL = new URL("./publisher.json", import.meta.url);

async function appUrl() {
  const own = (app.extensionManager?.setting?.get(APP_URL_SETTING) || "").trim();
  if (own) return own.replace(/\/+$/, "");
  const response = await fetch(CONFIG_URL, { cache: "no-store" });
  const config = response.ok ? await response.json() : {};
  if (!config.app_url) {
    throw new Error("Comfy Publisher's address is not set: set it in Settings › Comfy Publisher, or run "
      + "`python launch.py install-extension --comfyui-path DIR --app-url URL` again.");
  }
  return config.app_url.replace(/\/+$/, "");
}

function notify(summary, detail) {
  const toast = app.extensionManager?.toast;
  if (toast) toast.add({ severity: "error", summary, detail, life: 15000 });
  else window.alert(`${summary}\n\n${detail}`);
}

function waitingTab() {
  // Opened now, while the menu click still counts as the user's (no popup blocker stops it); the form is posted
  // into it once the graph is serialized.
  const name = `comfy-publisher-${Date.now()}`;
  const tab = window.open("", name);
  if (tab) {
    tab.document.title = "Comfy Publisher";
    tab.document.body.textContent = "Sending the workflow to Comfy Publisher…";
  }
  return { tab, name };
}

function postForm(action, target, fields) {
  // A form, not fetch(): ComfyUI may serve the editor with `connect-src 'self'`, which forbids a fetch to
  // another origin but not a navigation. The studio's login cookie goes with it (same site).
  const form = document.createElement("form");
  Object.assign(form, { method: "POST", action, target, enctype: "multipart/form-data" });
  form.style.display = "none";
  for (const [name, value] of Object.entries(fields)) {
    const field = document.createElement("textarea");
    Object.assign(field, { name, value });
    form.appendChild(field);
  }
  document.body.appendChild(form);
  form.submit();
  form.remove();
}

async function publish() {
  const { tab, name } = waitingTab();
  if (!tab) {
    notify("Publish… needs a new tab", "The browser blocked it: allow pop-ups for this page, then choose "
      + "File › Publish… again.");
    return;
  }
  try {
    const base = await appUrl();
    const { workflow, output } = await app.graphToPrompt();
    const file = app.extensionManager?.workflow?.activeWorkflow?.filename || "";
    postForm(`${base}/editor/publish`, name, {
      workflow: JSON.stringify(workflow),
      prompt: JSON.stringify(output),
      name: file,
    });
  } catch (error) {
    tab.close();
    notify("Publish… failed", error.message || String(error));
  }
}

app.registerExtension({
  name: "ComfyPublisher.Publish",
  settings: [{
    id: APP_URL_SETTING,
    category: ["Comfy Publisher", "Address"],
    name: "Comfy Publisher's address (empty: the one it installed this extension with)",
    type: "text",
    defaultValue: "",
  }],
  commands: [{
    id: COMMAND,
    label: "Publish…",
    icon: "pi pi-send",
    tooltip: "Publish this workflow with Comfy Publisher: a form and an API",
    function: publish,
  }],
  menuCommands: [{ path: ["File"], commands: [COMMAND] }],
});
