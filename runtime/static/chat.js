// The chat page: conversations in localStorage, answers streamed from /v1/chat/completions (SSE).
"use strict";

const STORE = "gpt4all-pipeline-chat";
// The server's API key (--api-key) lives in sessionStorage, apart from the conversations: it survives a
// reload and is forgotten with the tab.
const KEY_STORE = "gpt4all-pipeline-api-key";
// GPT4All's generation defaults (DESIGN.md, runtime.model.SamplingParams).
const DEFAULTS = { max_tokens: 200, temperature: 0.7, top_k: 40, top_p: 0.4, min_p: 0.0, repeat_penalty: 1.18, repeat_last_n: 64 };

const $ = (id) => document.getElementById(id);
let state = load();
let controller = null;

function load() {
  try {
    const saved = JSON.parse(localStorage.getItem(STORE));
    if (saved && Array.isArray(saved.conversations)) return saved;
  } catch (e) { /* a damaged store starts over */ }
  return { conversations: [], current: null, params: { ...DEFAULTS }, system: "", model: "", localdocs: [] };
}

function save() { localStorage.setItem(STORE, JSON.stringify(state)); }

function authHeaders() {
  const key = sessionStorage.getItem(KEY_STORE);
  return key ? { Authorization: `Bearer ${key}` } : {};
}

function setApiKey(key) {
  if (key) sessionStorage.setItem(KEY_STORE, key); else sessionStorage.removeItem(KEY_STORE);
  showError("");
  loadModels();
  loadCollections();
}

function current() { return state.conversations.find((c) => c.id === state.current); }

function newConversation() {
  const conversation = { id: String(Date.now()) + Math.random().toString(16).slice(2, 6), title: "New chat", messages: [] };
  state.conversations.unshift(conversation);
  state.current = conversation.id;
  save();
  render();
}

function showError(text) {
  const status = $("status");
  status.textContent = text || "";
  status.className = text ? "error" : "";
}

function renderConversations() {
  const list = $("conversations");
  list.replaceChildren();
  for (const c of state.conversations) {
    const item = document.createElement("li");
    item.className = c.id === state.current ? "active" : "";
    item.dataset.id = c.id;
    const title = document.createElement("span");
    title.textContent = c.title;
    title.onclick = () => { state.current = c.id; save(); render(); };
    const rename = document.createElement("button");
    rename.textContent = "✎";
    rename.title = "Rename";
    rename.onclick = () => {
      const name = prompt("Rename conversation", c.title);
      if (name) { c.title = name; save(); renderConversations(); }
    };
    const remove = document.createElement("button");
    remove.textContent = "✕";
    remove.title = "Delete";
    remove.onclick = () => {
      state.conversations = state.conversations.filter((x) => x.id !== c.id);
      if (state.current === c.id) state.current = state.conversations.length ? state.conversations[0].id : null;
      save();
      render();
    };
    item.append(title, rename, remove);
    list.append(item);
  }
}

function messageElement(message) {
  const box = document.createElement("div");
  box.className = `message ${message.role}`;
  const role = document.createElement("div");
  role.className = "role";
  role.textContent = message.role === "user" ? "You" : "Assistant";
  const text = document.createElement("div");
  text.className = "text";
  text.textContent = message.content;
  box.append(role, text);
  if (message.role === "assistant") {
    const copy = document.createElement("button");
    copy.className = "copy";
    copy.textContent = "copy";
    copy.onclick = () => navigator.clipboard && navigator.clipboard.writeText(text.textContent);
    box.append(copy);
    if (message.sources && message.sources.length) box.append(sourcesElement(message.sources));
  }
  return box;
}

// The LocalDocs excerpts an answer was given: one button per source; a click shows or hides its text.
function sourcesElement(sources) {
  const box = document.createElement("div");
  box.className = "sources";
  box.append("Sources: ");
  const snippet = document.createElement("pre");
  snippet.className = "snippet";
  snippet.hidden = true;
  sources.forEach((source, i) => {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "source";
    const where = source.page != null ? `, page ${source.page}` : "";
    button.textContent = `[${i + 1}] ${source.collection}/${source.path}${where}`;
    button.onclick = () => {
      const showing = !snippet.hidden && snippet.dataset.index === String(i);
      snippet.hidden = showing;
      snippet.dataset.index = String(i);
      snippet.textContent = source.text;
    };
    box.append(button);
  });
  box.append(snippet);
  return box;
}

function renderMessages() {
  const area = $("messages");
  area.replaceChildren(...(current() ? current().messages.map(messageElement) : []));
  area.scrollTop = area.scrollHeight;
}

function renderParams() {
  const box = $("params");
  box.replaceChildren();
  for (const [name, value] of Object.entries(state.params)) {
    const label = document.createElement("label");
    label.textContent = name;
    const input = document.createElement("input");
    input.type = "number";
    input.step = "any";
    input.id = `param-${name}`;
    input.value = value;
    input.onchange = () => { state.params[name] = Number(input.value); save(); };
    label.append(input);
    box.append(label);
  }
}

function render() {
  renderConversations();
  renderMessages();
  renderParams();
  $("system").value = state.system;
}

async function loadModels() {
  try {
    const reply = await fetch("/v1/models", { headers: authHeaders() });
    if (reply.status === 401) {
      showError(`This server needs its API key (--api-key): ${$("api-key").value ? "the one entered is wrong" : "enter it"} under Settings.`);
      return;
    }
    if (!reply.ok) throw new Error(`HTTP ${reply.status}`);
    const models = (await reply.json()).data.map((m) => m.id);
    const select = $("model");
    select.replaceChildren(...models.map((id) => new Option(id, id)));
    if (!models.includes(state.model)) state.model = models[0] || "";
    select.value = state.model;
    select.onchange = () => { state.model = select.value; save(); };
  } catch (error) {
    showError(`The server did not answer (${error.message}). Is \`python -m runtime serve\` running?`);
  }
}

async function loadCollections() {
  const box = $("collections");
  try {
    const reply = await fetch("/v1/localdocs", { headers: authHeaders() });
    if (!reply.ok) return;  // (a missing key is reported by loadModels)
    const names = (await reply.json()).data.map((c) => c.id);
    state.localdocs = (state.localdocs || []).filter((name) => names.includes(name));
    if (!names.length) return;
    box.replaceChildren(...names.map((name) => {
      const label = document.createElement("label");
      const check = document.createElement("input");
      check.type = "checkbox";
      check.id = `doc-${name}`;
      check.checked = state.localdocs.includes(name);
      check.onchange = () => {
        state.localdocs = state.localdocs.filter((n) => n !== name).concat(check.checked ? [name] : []);
        save();
      };
      label.append(check, name);
      return label;
    }));
  } catch (error) { /* loadModels reports an unreachable server */ }
}

function setBusy(busy) {
  $("send").disabled = busy;
  $("regenerate").disabled = busy;
  $("stop").disabled = !busy;
}

async function streamAnswer(conversation) {
  const history = conversation.messages.map(({ role, content }) => ({ role, content }));
  const messages = state.system ? [{ role: "system", content: state.system }, ...history] : history;
  const answer = { role: "assistant", content: "" };
  conversation.messages.push(answer);
  const element = messageElement(answer);
  $("messages").append(element);
  const text = element.querySelector(".text");
  controller = new AbortController();
  setBusy(true);
  showError("");
  try {
    const reply = await fetch("/v1/chat/completions", {
      method: "POST",
      headers: { "Content-Type": "application/json", ...authHeaders() },
      body: JSON.stringify({ model: state.model, messages, stream: true, ...state.params,
                             ...(state.localdocs && state.localdocs.length ? { localdocs: state.localdocs } : {}) }),
      signal: controller.signal,
    });
    if (!reply.ok) {
      const body = await reply.json().catch(() => ({}));
      throw new Error((body.error && body.error.message) || `HTTP ${reply.status}`);
    }
    const reader = reply.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      const events = buffer.split(/\r?\n\r?\n/);
      buffer = events.pop();
      for (const event of events) {
        const data = event.split(/\r?\n/).filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trim()).join("");
        if (!data || data === "[DONE]") continue;
        const chunk = JSON.parse(data);
        if (chunk.sources) answer.sources = chunk.sources;  // LocalDocs: in the final chunk
        const piece = chunk.choices[0].delta.content || "";
        answer.content += piece;
        text.textContent = answer.content;
        $("messages").scrollTop = $("messages").scrollHeight;
      }
    }
  } catch (error) {
    if (error.name !== "AbortError") showError(`The model failed: ${error.message}`);
  } finally {
    controller = null;
    setBusy(false);
    if (!answer.content) conversation.messages.pop();
    save();
    renderMessages();
  }
}

async function send(event) {
  event.preventDefault();
  const content = $("input").value.trim();
  if (!content || controller) return;
  if (!current()) newConversation();
  const conversation = current();
  conversation.messages.push({ role: "user", content });
  if (conversation.title === "New chat") conversation.title = content.slice(0, 40);
  $("input").value = "";
  save();
  renderConversations();
  renderMessages();
  await streamAnswer(conversation);
}

async function regenerate() {
  const conversation = current();
  if (!conversation || controller) return;
  while (conversation.messages.length && conversation.messages[conversation.messages.length - 1].role === "assistant") {
    conversation.messages.pop();
  }
  if (!conversation.messages.length) return;
  renderMessages();
  await streamAnswer(conversation);
}

$("composer").onsubmit = send;
$("input").onkeydown = (e) => { if (e.key === "Enter" && !e.shiftKey) send(e); };
$("stop").onclick = () => controller && controller.abort();
$("regenerate").onclick = regenerate;
$("new-chat").onclick = newConversation;
$("system").onchange = () => { state.system = $("system").value; save(); };
$("api-key").value = sessionStorage.getItem(KEY_STORE) || "";
$("api-key").onchange = () => setApiKey($("api-key").value.trim());
$("reset-params").onclick = () => { state.params = { ...DEFAULTS }; save(); renderParams(); };
if (!current()) newConversation(); else render();
loadModels();
loadCollections();
