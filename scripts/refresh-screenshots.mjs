// Copies the screenshots the tests took (.test-artifacts/, from `npm test -- webview e2e`) to where
// the README and the walkthrough show them: docs/screenshots/ as taken, media/walkthrough/ cropped
// to the part each step is about (the walkthrough's image pane is narrow) in the light and dark
// variants VS Code picks from.
// Run after looking at them: `node scripts/refresh-screenshots.mjs` (`--walkthrough`: only the
// walkthrough's images, which need only `npm test -- webview`).
import sharp from 'sharp';
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import * as path from 'node:path';

const shots = '.test-artifacts/screenshots';
const e2e = '.test-artifacts/e2e/studio';

/** The e2e screenshot of a step (they are numbered in the order taken: found by the step's name). */
const e2eShot = (step) => path.join(e2e, (existsSync(e2e) ? readdirSync(e2e) : []).find((f) => f.endsWith(`-${step}.png`)) ?? `NN-${step}.png`);

/** docs/screenshots/<name>.png <- a test's screenshot */
const docs = {
  'codebook-real-dark': `${shots}/codebook-real-dark.png`,
  'codebook-real-light': `${shots}/codebook-real-light.png`,
  'codebook-500k-dark': `${shots}/codebook-500k-dark.png`,
  'codebook-coarse-dark': `${shots}/codebook-coarse-dark.png`,
  'codebook-drift-dark': `${shots}/codebook-drift-dark.png`,
  'codebook-dead-light': `${shots}/codebook-dead-light.png`,
  'tokengrid-light': `${shots}/tokengrid-light.png`,
  'tokengrid-dark': `${shots}/tokengrid-dark.png`,
  'tokengrid-high-contrast': `${shots}/tokengrid-high-contrast.png`,
  'tokens-dark': `${shots}/tokens-dark.png`,
  'renderer-dark': `${shots}/renderer-dark.png`,
  'generation-dark': `${shots}/generation-dark.png`,
  'generation-light': `${shots}/generation-light.png`,
  'generation-high-contrast': `${shots}/generation-high-contrast.png`,
  'generation-inpaint-dark': `${shots}/generation-inpaint-dark.png`,
  'generation-ar-dark': `${shots}/generation-ar-dark.png`,
  'lab-dark': `${shots}/lab-300px-dark.png`,
  'lab-light': `${shots}/lab-light.png`,
  'in-vscode-token-grid': e2eShot('token-grid'),
  'in-vscode-walkthrough': e2eShot('walkthrough'),
  'in-vscode-codebooks-view': e2eShot('codebooks-view'),
  'in-vscode-choose-codebook': e2eShot('choose-codebook'),
  'in-vscode-build-name-refused': e2eShot('build-name-refused'),
  'in-vscode-codebook-other-set-refused': e2eShot('codebook-other-set-refused'),
  'in-vscode-decode-tokens': e2eShot('decode-tokens'),
  'in-vscode-code-no-patches-yet': e2eShot('code-no-patches-yet'),
  'in-vscode-code-patches-after-corpus': e2eShot('code-patches-after-corpus'),
  'in-vscode-fit-choose-sets': e2eShot('fit-choose-sets'),
  'in-vscode-lab-fit': e2eShot('lab-fit'),
  'in-vscode-lab-rerun-in-gallery': e2eShot('lab-rerun-in-gallery'),
};

/**
 * media/walkthrough/<step>-<light|dark>.png <- [screenshot of that theme, the part of it shown].
 * The walkthrough's image pane is narrow: a whole panel shrunk to fit it cannot be read, so each
 * step shows the part it is about at (or near) the size it was taken.
 */
// the parts, in the screenshots' pixels (each test's viewport fixes its layout)
const TOKENIZE = { left: 0, top: 0, width: 558, height: 432 }; // the grid with a cell's tooltip and its caption
const CODEBOOK = { left: 450, top: 0, width: 750, height: 760 }; // half the heatmap, the selected code, summary and detail
const GENERATE = { left: 564, top: 0, width: 536, height: 536 }; // the sampled image, its codebook and details
const walkthrough = {
  build: (theme) => [`${shots}/lab-${theme}.png`, { left: 0, top: 0, width: 360, height: 462 }],
  tokenize: (theme) => [`${shots}/tokengrid-${theme}.png`, TOKENIZE],
  codebook: (theme) => [`${shots}/codebook-real-${theme}.png`, CODEBOOK],
  generate: (theme) => [`${shots}/generation-${theme}.png`, GENERATE],
};
const WALKTHROUGH_WIDTH = 640;

// `--walkthrough`: only media/walkthrough/, from the webview tests' screenshots (no e2e run needed)
const only = process.argv.includes('--walkthrough');
const sources = [...(only ? [] : Object.values(docs)), ...Object.values(walkthrough).flatMap((f) => ['light', 'dark'].map((t) => f(t)[0]))];
const missing = sources.filter((f) => !existsSync(f));
if (missing.length) {
  console.error(`missing (run ${only ? 'the webview tests' : 'npm test -- webview e2e'} first):\n  ${missing.join('\n  ')}`);
  process.exit(1);
}
mkdirSync('media/walkthrough', { recursive: true });
if (!only) {
  mkdirSync('docs/screenshots', { recursive: true });
  for (const [name, from] of Object.entries(docs)) await sharp(from).png({ palette: true, quality: 90 }).toFile(`docs/screenshots/${name}.png`);
}
for (const [step, source] of Object.entries(walkthrough)) {
  for (const theme of ['light', 'dark']) {
    const [from, region] = source(theme);
    const buffer = await sharp(from).extract(region).png().toBuffer();
    await sharp(buffer).resize({ width: Math.min(WALKTHROUGH_WIDTH, region.width) }).png({ palette: true, quality: 90 }).toFile(path.join('media/walkthrough', `${step}-${theme}.png`));
  }
}
console.log(`${only ? '' : `docs/screenshots: ${Object.keys(docs).length} files; `}media/walkthrough: ${Object.keys(walkthrough).length * 2} files`);
