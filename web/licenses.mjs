// Lists every npm package the designer's bundle may contain, with its licence and the licence
// text, into dist/LICENSES.txt (served at /designer/static/LICENSES.txt).
import { readFileSync, writeFileSync, existsSync, readdirSync, mkdirSync } from "node:fs";
import { join } from "node:path";

const lock = JSON.parse(readFileSync("package-lock.json", "utf8"));
const out = ["Third-party JavaScript in the FlexVoice designer (web/dist), from web/package-lock.json", ""];
for (const [path, info] of Object.entries(lock.packages)) {
  if (!path.startsWith("node_modules/") || info.dev) continue;
  const name = path.slice("node_modules/".length);
  if (name.startsWith("esbuild") || name.startsWith("@esbuild/")) continue; // the build tool
  out.push(`${name} ${info.version} (${info.license || "see its licence file"})`);
  const dir = join("node_modules", name);
  const file = existsSync(dir) && readdirSync(dir).find((f) => /^licen[cs]e/i.test(f));
  if (file) out.push(readFileSync(join(dir, file), "utf8").trim());
  out.push("", "-".repeat(72), "");
}
mkdirSync("dist", { recursive: true });
writeFileSync("dist/LICENSES.txt", out.join("\n") + "\n");
