// The source tree's import graph: relative imports in src/**/*.ts (type-only ones too, as madge
// counts them) must form no cycle, so each area can be read, and changed, from the bottom up.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const srcDir = fileURLToPath(new URL('../../src/', import.meta.url));

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(full);
    return entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts') ? [full] : [];
  });
}

/** Relative module paths a file imports or re-exports, static or dynamic, resolved to src/ paths. */
export function relativeImports(file: string, text: string): string[] {
  const specs = new Set<string>();
  const patterns = [
    /\b(?:import|export)\s+(?:type\s+)?(?:[\w*{}\s,$]+?\s+from\s+)?['"](\.{1,2}\/[^'"]+)['"]/g,
    /\bimport\(\s*['"](\.{1,2}\/[^'"]+)['"]\s*\)/g,
  ];
  for (const pattern of patterns) for (const m of text.matchAll(pattern)) specs.add(m[1]!);
  return [...specs].map((spec) => path.relative(srcDir, path.resolve(path.dirname(file), spec.replace(/\.js$/, '.ts'))));
}

function importGraph(): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const file of sourceFiles(srcDir)) graph.set(path.relative(srcDir, file), relativeImports(file, readFileSync(file, 'utf8')));
  return graph;
}

/** Every elementary cycle's node set would be costly; one cycle per strongly connected component is enough to name it. */
export function cycles(graph: Map<string, string[]>): string[][] {
  // Tarjan's strongly connected components; a component of more than one file (or a self-import) is a cycle.
  let index = 0;
  const indexOf = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (node: string) => {
    indexOf.set(node, index);
    low.set(node, index++);
    stack.push(node);
    onStack.add(node);
    for (const next of graph.get(node) ?? []) {
      if (!graph.has(next)) continue;
      if (!indexOf.has(next)) {
        visit(next);
        low.set(node, Math.min(low.get(node)!, low.get(next)!));
      } else if (onStack.has(next)) {
        low.set(node, Math.min(low.get(node)!, indexOf.get(next)!));
      }
    }
    if (low.get(node) === indexOf.get(node)) {
      const component: string[] = [];
      let member: string;
      do {
        member = stack.pop()!;
        onStack.delete(member);
        component.push(member);
      } while (member !== node);
      if (component.length > 1 || (graph.get(node) ?? []).includes(node)) found.push(component.sort());
    }
  };
  for (const node of [...graph.keys()].sort()) if (!indexOf.has(node)) visit(node);
  return found;
}

/** A folder under src/ (queue, broadcast, http …), or a file directly in src/. */
const area = (file: string) => (file.includes(path.sep) ? file.split(path.sep)[0]! : file);

/** The graph between areas: an edge wherever a file of one imports a file of another. */
function areaGraph(graph: Map<string, string[]>): Map<string, string[]> {
  const areas = new Map<string, Set<string>>();
  for (const [file, imports] of graph) {
    const from = area(file);
    const to = areas.get(from) ?? new Set<string>();
    areas.set(from, to);
    for (const target of imports) if (graph.has(target) && area(target) !== from) to.add(area(target));
  }
  return new Map([...areas].map(([a, to]) => [a, [...to].sort()]));
}

test('the cycle finder sees a cycle, including one through a type-only import', () => {
  const graph = new Map([
    ['a.ts', ['http/b.ts']],
    ['http/b.ts', ['a.ts']],
    ['c.ts', ['a.ts']],
  ]);
  assert.equal(cycles(graph), [['a.ts', 'http/b.ts']]);
  const file = path.join(srcDir, 'http', 'b.ts');
  assert.equal(relativeImports(file, "import type { A } from '../a.js';\nimport {\n  x,\n  y,\n} from './c.js';\nexport * from '../d.js';\nawait import('./e.js');"), [
    'a.ts', path.join('http', 'c.ts'), 'd.ts', path.join('http', 'e.ts'),
  ]);
});

test('src/ has no import cycle between files', () => {
  const graph = importGraph();
  assert.ok(graph.size > 50, `read only ${graph.size} source files from ${srcDir}`);
  const found = cycles(graph);
  assert.equal(found, [], `import cycles in src/:\n${found.map((c) => c.join(' ↔ ')).join('\n')}`);
});

// The job types are assembled in jobs/, above both broadcast/ and telegram/, so the Bot API side
// (telegram/) never reaches back into the broadcast domain that drives it.
test('src/ areas import each other in one direction', () => {
  const found = cycles(areaGraph(importGraph()));
  assert.equal(found, [], `cycles between areas of src/:\n${found.map((c) => c.join(' ↔ ')).join('\n')}`);
});

test.run();
