// Checks every import of the product's TypeScript against the layer rules in layers.config.json:
// a file may import its own layer, the layers its rule names, and only the outside modules the
// rule allows. Run by the unit tier (test/unit/layers.test.ts); `npx tsx scripts/check-layers.ts`
// prints the violations. Type-only imports count: a type pulled across a layer is still a
// dependency the layer should not have.
import { readFileSync, readdirSync, statSync, existsSync } from 'node:fs';
import * as path from 'node:path';

export interface LayerRule {
  name: string;
  paths: string[];
  imports: string[];
  allowExternal: string[];
}

export interface Violation {
  file: string;
  specifier: string;
  message: string;
}

/** Source with comments blanked out (strings and template literals kept as they are). */
function withoutComments(src: string): string {
  let out = '';
  let i = 0;
  let quote: string | null = null;
  while (i < src.length) {
    const c = src[i]!;
    if (quote) {
      out += c;
      if (c === '\\') out += src[++i] ?? '';
      else if (c === quote) quote = null;
      i++;
    } else if (c === '/' && src[i + 1] === '/') {
      while (i < src.length && src[i] !== '\n') i++;
    } else if (c === '/' && src[i + 1] === '*') {
      const end = src.indexOf('*/', i + 2);
      i = end < 0 ? src.length : end + 2;
    } else {
      if (c === '"' || c === "'" || c === '`') quote = c;
      out += c;
      i++;
    }
  }
  return out;
}

// import/export statements (`from` at the end of one, possibly over several lines), side-effect
// imports, and the dynamic forms import('x') and require('x').
const STATIC = /^\s*(?:import|export)\b[^;'"]*?\bfrom\s+(['"])([^'"\n]+)\1|^\s*import\s+(['"])([^'"\n]+)\3/gm;
const DYNAMIC = /\b(?:import|require)\s*\(\s*(['"])([^'"\n]+)\1/g;

export function importsOf(src: string): string[] {
  const code = withoutComments(src);
  const found: { at: number; specifier: string }[] = [];
  for (const m of code.matchAll(STATIC)) found.push({ at: m.index!, specifier: (m[2] ?? m[4])! });
  for (const m of code.matchAll(DYNAMIC)) found.push({ at: m.index!, specifier: m[2]! });
  return found.sort((a, b) => a.at - b.at).map((f) => f.specifier);
}

function listTs(dir: string): string[] {
  if (!existsSync(dir)) return [];
  if (statSync(dir).isFile()) return dir.endsWith('.ts') ? [dir] : [];
  return readdirSync(dir).flatMap((name) => listTs(path.join(dir, name)));
}

function layerOf(rel: string, rules: LayerRule[]): LayerRule | undefined {
  return rules.find((r) => r.paths.some((p) => (p.endsWith('/') ? rel.startsWith(p) : rel === p)));
}

function resolveRelative(fromFile: string, specifier: string, root: string): string {
  const base = path.resolve(path.dirname(fromFile), specifier.replace(/\.js$/, ''));
  const candidates = [`${base}.ts`, path.join(base, 'index.ts'), base];
  const hit = candidates.find((c) => existsSync(c) && statSync(c).isFile()) ?? `${base}.ts`;
  return path.relative(root, hit).split(path.sep).join('/');
}

function externalAllowed(specifier: string, allow: string[]): boolean {
  const name = specifier.startsWith('node:') ? specifier : specifier.split('/').slice(0, specifier.startsWith('@') ? 2 : 1).join('/');
  return allow.some((a) => (a.endsWith('*') ? name.startsWith(a.slice(0, -1)) : name === a));
}

export function checkLayers(root: string, rules: LayerRule[]): Violation[] {
  const violations: Violation[] = [];
  const files = [...new Set(rules.flatMap((r) => r.paths.flatMap((p) => listTs(path.join(root, p)))))];
  for (const file of files) {
    const rel = path.relative(root, file).split(path.sep).join('/');
    const layer = layerOf(rel, rules)!;
    for (const specifier of importsOf(readFileSync(file, 'utf8'))) {
      if (specifier.startsWith('.')) {
        const target = resolveRelative(file, specifier, root);
        const targetLayer = layerOf(target, rules);
        if (!targetLayer) {
          violations.push({ file: rel, specifier, message: `${rel} (${layer.name}) imports ${target}, which belongs to no layer` });
        } else if (targetLayer !== layer && !layer.imports.includes(targetLayer.name)) {
          violations.push({ file: rel, specifier, message: `${rel} (${layer.name}) imports ${target} (${targetLayer.name}); ${layer.name} may import ${[layer.name, ...layer.imports].join(', ')}` });
        }
      } else if (!externalAllowed(specifier, layer.allowExternal)) {
        violations.push({ file: rel, specifier, message: `${rel} (${layer.name}) imports '${specifier}'; ${layer.name} may use ${layer.allowExternal.join(', ') || 'no outside module'}` });
      }
    }
  }
  return violations;
}

export function readLayerRules(root: string): LayerRule[] {
  return (JSON.parse(readFileSync(path.join(root, 'layers.config.json'), 'utf8')) as { layers: LayerRule[] }).layers;
}

if (process.argv[1] && path.resolve(process.argv[1]) === path.resolve(__filename)) {
  const root = path.resolve(__dirname, '..');
  const violations = checkLayers(root, readLayerRules(root));
  for (const v of violations) console.error(v.message);
  console.log(violations.length ? `${violations.length} layer violation(s)` : 'layers: no violations');
  process.exit(violations.length ? 1 : 0);
}
