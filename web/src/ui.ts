// Small DOM helpers: the app builds its page with these instead of a framework.

type Attrs = Record<string, string | number | boolean | null | undefined>;
type Child = Node | string | null | undefined | false;

export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "text") node.textContent = String(value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child) node.append(child);
  }
  return node;
}

export function button(label: string, onClick: () => void | Promise<void>, attrs: Attrs = {}): HTMLButtonElement {
  const b = el("button", { type: "button", ...attrs }, label);
  b.addEventListener("click", () => {
    void Promise.resolve(onClick()).catch((err: unknown) => console.error(err));
  });
  return b;
}

/** A labelled progress bar: `set(percent, text)` updates it. */
export class ProgressBar {
  readonly root: HTMLElement;
  private readonly fill: HTMLElement;
  private readonly label: HTMLElement;

  constructor(attrs: Attrs = {}) {
    this.fill = el("div", { class: "fill" });
    this.label = el("span", { class: "label" });
    this.root = el("div", { class: "progress", role: "progressbar", ...attrs }, this.fill, this.label);
  }

  set(percent: number, text: string): void {
    const p = Math.max(0, Math.min(100, Math.round(percent)));
    this.fill.style.width = `${p}%`;
    this.root.setAttribute("aria-valuenow", String(p));
    this.label.textContent = text;
  }
}

/** The message of any error, with the Firebase code when there is one. */
export function describeError(err: unknown): string {
  if (err && typeof err === "object" && "code" in err && "message" in err) {
    return `${String(err.code)}: ${String(err.message)}`;
  }
  return String(err);
}

export function section(title: string, id: string): HTMLElement {
  return el("section", { id }, el("h2", { text: title }));
}
