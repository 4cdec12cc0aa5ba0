// China Desk local chat page (bot/web): sends what is typed to POST /chat/api and lays out the reply.
// Every element is built with createElement and textContent: no text from a user or from the content
// is ever parsed as HTML. Links are made only for http(s) URLs.
"use strict";

(function () {
  const token = document.querySelector('meta[name="chinadesk-token"]').content;
  const maxChars = Number(document.querySelector('meta[name="chinadesk-max-chars"]').content) || 4000;
  const log = document.getElementById("log");
  const form = document.getElementById("ask");
  const input = document.getElementById("text");
  const send = document.getElementById("send");
  const status = document.getElementById("status");
  const KEY = "chinadesk.conversation";
  let busy = false;

  function newId() {
    const bytes = new Uint8Array(12);
    crypto.getRandomValues(bytes);
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function conversation() {
    let state = null;
    try { state = JSON.parse(sessionStorage.getItem(KEY) || "null"); } catch (e) { state = null; }
    if (!state || typeof state.id !== "string") {
      state = { id: newId(), sent: 0 };
      sessionStorage.setItem(KEY, JSON.stringify(state));
    }
    return state;
  }

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) appendText(node, String(text));
    return node;
  }

  // Text with `commands` in backticks: the commands become <code>, the rest text nodes.
  function appendText(parent, text) {
    const parts = text.split(/`([^`\n]+)`/);
    parts.forEach((part, i) => {
      if (!part) return;
      if (i % 2 === 1) parent.appendChild(el("code", null)).textContent = part;
      else parent.appendChild(document.createTextNode(part));
    });
    return parent;
  }

  function paragraphs(parent, text, className) {
    for (const line of text.split("\n")) {
      if (line.trim()) parent.appendChild(el("p", className, line));
    }
  }

  function heading(parent, text) {
    if (text) parent.appendChild(el("h3", null, text));
  }

  function commandButton(label, command) {
    const button = el("button", "command", label);
    button.type = "button";
    button.dataset.command = command;
    button.title = command;
    return button;
  }

  function card(reply) {
    const article = el("article", "card kind-" + reply.kind);
    article.lang = reply.language === "zh" ? "zh" : "en";
    article.dataset.topic = reply.topic || "";
    article.appendChild(el("h2", null, reply.title));
    if (reply.summary) paragraphs(article, reply.summary, "summary");
    if (reply.text) paragraphs(article, reply.text);
    if (reply.fields.length) {
      const list = article.appendChild(el("dl", "fields"));
      for (const field of reply.fields) {
        const term = list.appendChild(el("dt", null, field.label));
        if (field.note) term.appendChild(el("span", "note", " (" + field.note + ")"));
        const value = list.appendChild(el("dd"));
        paragraphs(value, field.value);
      }
    }
    if (reply.deadline) {
      const box = article.appendChild(el("section", "deadline" + (reply.deadline.estimate ? " estimate" : "")));
      box.appendChild(el("p", "due", reply.deadline.heading));
      box.appendChild(el("p", "rule", reply.deadline.rule));
      if (reply.deadline.counted.length) {
        heading(box, reply.deadline.counted_heading);
        const list = box.appendChild(el("ul"));
        for (const line of reply.deadline.counted) list.appendChild(el("li", null, line));
      }
    }
    if (reply.steps) {
      heading(article, reply.steps.heading);
      const list = article.appendChild(el("ul", "steps"));
      for (const step of reply.steps.items) {
        const item = list.appendChild(el("li"));
        item.appendChild(el("strong", null, step.label));
        if (step.when) item.appendChild(document.createTextNode(" — " + step.when));
        item.appendChild(document.createTextNode(": "));
        appendText(item, step.text);
      }
    }
    if (reply.checklist) {
      heading(article, reply.checklist.heading);
      const list = article.appendChild(el("ol", "checklist"));
      for (const step of reply.checklist.items) list.appendChild(el("li", null, step));
    }
    if (reply.sources) {
      heading(article, reply.sources.heading);
      const list = article.appendChild(el("ol", "sources"));
      for (const source of reply.sources.items) {
        const item = list.appendChild(el("li"));
        item.value = source.number;
        if (source.url && /^https?:\/\//i.test(source.url)) {
          const link = item.appendChild(el("a", null, source.title));
          link.href = source.url;
          link.rel = "noopener noreferrer";
          link.target = "_blank";
        } else {
          item.appendChild(el("span", null, source.title));
        }
        item.appendChild(document.createTextNode(" (" + source.published + ")"));
      }
    }
    if (reply.menu) {
      const row = article.appendChild(el("div", "menu"));
      const select = row.appendChild(el("select"));
      select.setAttribute("aria-label", reply.menu.heading);
      for (const choice of reply.menu.items) {
        const option = select.appendChild(el("option", null, choice.title));
        option.value = choice.command;
      }
      const open = row.appendChild(el("button", "open", reply.menu.heading));
      open.type = "button";
      open.addEventListener("click", () => ask(select.value));
    }
    for (const caveat of reply.caveats) article.appendChild(el("p", "caveat", caveat));
    if (reply.buttons.length) {
      const row = article.appendChild(el("div", "actions"));
      for (const b of reply.buttons) row.appendChild(commandButton(b.label, b.command));
    }
    return article;
  }

  function show(node) {
    log.appendChild(node);
    node.scrollIntoView({ block: "start", behavior: "smooth" });
  }

  function setBusy(value, message) {
    busy = value;
    send.disabled = value;
    log.setAttribute("aria-busy", value ? "true" : "false");
    status.textContent = message || "";
  }

  async function ask(text) {
    text = String(text || "").trim();
    if (busy || !text) return;
    if (text.length > maxChars) {
      show(el("p", "error", "That message is too long: I read up to " + maxChars.toLocaleString() +
        " characters. Ask a shorter question."));
      return;
    }
    const state = conversation();
    const mine = el("p", "mine");
    mine.textContent = text;  // what the user typed, exactly (no code spans made of their backticks)
    show(mine);
    setBusy(true, "Checking the packs…");
    let timezone = "";
    try { timezone = Intl.DateTimeFormat().resolvedOptions().timeZone || ""; } catch (e) { timezone = ""; }
    try {
      const response = await fetch("/chat/api", {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-Chat-Token": token },
        body: JSON.stringify({ text: text, conversation: state.id, opener: state.sent === 0, timezone: timezone }),
      });
      let data = null;
      try { data = await response.json(); } catch (e) { data = null; }
      if (response.ok && data && data.reply) {
        state.sent += 1;
        sessionStorage.setItem(KEY, JSON.stringify(state));
        show(card(data.reply));
      } else {
        const message = data && typeof data.error === "string" ? data.error
          : "Something went wrong on the server (" + response.status + "). Please try again.";
        show(el("p", "error", message));
      }
    } catch (e) {
      show(el("p", "error", "The server did not answer. Is `chinadesk serve` still running?"));
    } finally {
      setBusy(false);
      input.focus();
    }
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = input.value;
    if (!text.trim() || busy) return;
    input.value = "";
    ask(text);
  });
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  // Example and related-command buttons, in the page and in every card: run their command.
  document.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-command]");
    if (button) ask(button.dataset.command);
  });
  document.getElementById("new").addEventListener("click", () => {
    sessionStorage.setItem(KEY, JSON.stringify({ id: newId(), sent: 0 }));
    log.replaceChildren();
    status.textContent = "New conversation: follow-up questions start afresh.";
    input.focus();
  });
  document.body.dataset.ready = "true";
})();
