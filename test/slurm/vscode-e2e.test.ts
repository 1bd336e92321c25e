// The slurm tier in a real VS Code (code-server + Chromium, as the e2e tier drives it) on the
// one-node cluster: Tokenize Folder on a folder of shards offers "Run on Slurm" (sbatch is on the
// PATH), the Lab cell shows the tasks pending, the window is reloaded while they wait, and the
// reloaded window's cell follows them again from the job folder until they are done. The
// workspace's unicode2.slurm.sbatch holds the jobs (--hold), so they are pending whatever the
// machine's speed until the test releases them (scontrol release) after the reload.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Frame } from 'playwright-core';
import { repoRoot, startCodeServer, type CodeServer } from '../e2e/code-server.js';
import { answerFileDialog, findWebviewFrame, openWorkbench, pickQuickItem, runCommand, type Workbench } from '../e2e/workbench.js';
import { fixtureImages, writeWorkspaceSettings } from '../e2e/workspace.js';
import { sampleEntries, writeTar } from '../helpers/shards.js';
import { readJobsFile } from '../../extension/engine/index.js';

const PHOTOS = ['astronaut.jpg', 'brick.png', 'chelsea.png', 'coffee.jpg'];

describe('Tokenize Folder on Slurm in code-server', { timeout: 15 * 60_000 }, () => {
  let workspace: string;
  let server: CodeServer | undefined;
  let workbench: Workbench | undefined;
  const ws = (...parts: string[]) => join(workspace, ...parts);
  const out = (folder = 'laion') => ws('.unicode2', 'tokens', `${folder}.k32-dct.tokens`);
  const states = (frame: Frame, cell: string) => frame.locator(`${cell} .slurm-task`).evaluateAll((els) => els.map((e) => `${(e as HTMLElement).dataset.task}:${(e as HTMLElement).dataset.state}`));
  const lab = (selector: string): Promise<Frame> => findWebviewFrame(workbench!.page, selector, 90_000);

  before(async () => {
    const exported = execFileSync('bash', ['scripts/setup-slurm.sh'], { cwd: repoRoot, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
    // code-server inherits it, and so does the extension host's sbatch
    process.env.SLURM_CONF = /^export SLURM_CONF=(.+)$/m.exec(exported)![1]!.replace(/^'(.*)'$/, '$1');
    execFileSync(process.execPath, ['scripts/build.mjs', '--quiet'], { cwd: repoRoot, stdio: 'inherit' });
    workspace = await mkdtemp(join(tmpdir(), 'u2-slurm-e2e-'));
    const codebook = ws('.unicode2', 'codebooks', 'k32-dct.safetensors');
    execFileSync(process.execPath, [join(repoRoot, 'dist', 'cli.js'), 'build', '--images', fixtureImages, '--k', '32', '--iters', '3', '--out', codebook, '--quiet']);
    // the same two shards in three folders: one for each run
    for (const folder of ['laion', 'laion-here', 'laion-cancel']) {
      await mkdir(ws(folder));
      for (const s of [0, 1]) {
        writeTar(ws(folder, `0000${s}.tar`), [0, 1].flatMap((i) => {
          const photo = PHOTOS[s * 2 + i]!;
          return sampleEntries(`${s}${i}`, { [photo.split('.')[1]!]: new Uint8Array(readFileSync(join(fixtureImages, photo))) });
        }));
      }
    }
    // a folder of embedding files, for Build
    await mkdir(ws('emb'));
    for (const [i, photos] of [PHOTOS.slice(0, 2), PHOTOS.slice(2)].entries()) {
      execFileSync(process.execPath, [join(repoRoot, 'dist', 'cli.js'), 'embed', ...photos.map((p) => join(fixtureImages, p)), '--out', ws('emb', `part-${i}.npy`), '--quiet']);
    }
    await writeWorkspaceSettings(workspace, {
      'unicode2.codebook': codebook, 'unicode2.encoder': 'dct', 'unicode2.k': 16, 'unicode2.iterations': 3, 'unicode2.tolerance': 0,
      'unicode2.slurm.sbatch': '--hold --time=10', 'unicode2.slurm.tasks': 0,
    });
    server = await startCodeServer({ workspace });
    workbench = await openWorkbench(server.url, 'slurm');
  }, { timeout: 10 * 60_000 });

  after(async () => {
    if (server && workbench) await server.saveLogs(join(workbench.artifacts, 'logs')).catch(() => undefined);
    await workbench?.close();
    await server?.stop();
    execFileSync('bash', ['scripts/stop-slurm.sh'], { cwd: repoRoot, stdio: 'inherit' });
    if (workspace) await rm(workspace, { recursive: true, force: true });
  });

  test('Run on Slurm: the cell shows the tasks pending; a reloaded window follows them until they are done', { timeout: 10 * 60_000 }, async () => {
    const page = workbench!.page;
    await runCommand(page, 'UniCode²: Tokenize Folder…');
    await answerFileDialog(page, ws('laion') + '/');
    await pickQuickItem(page, 'Run on Slurm');
    await page.locator('.activitybar [aria-label^="UniCode² Lab"]').first().click();
    let frame = await lab('.lab-cell[data-status="running"] .slurm-task[data-task="merge"]');
    const held = frame.locator('.lab-cell[data-status="running"] .slurm-task');
    assert.deepEqual(await held.evaluateAll((els) => els.map((e) => `${(e as HTMLElement).dataset.task}:${(e as HTMLElement).dataset.state}`)), ['1:pending', '2:pending', 'merge:pending']);
    await workbench!.screenshot('lab-slurm-pending');
    const sub = (await readJobsFile(join(out(), '.slurm')))!.submissions.at(-1)!;

    await runCommand(page, 'Developer: Reload Window');
    await page.locator('.monaco-workbench').waitFor({ state: 'visible', timeout: 90_000 });
    // the Lab comes back with the window; its cell is still running, following the jobs again
    if (!(await page.locator('.activitybar [aria-label^="UniCode² Lab"].checked').count())) await page.locator('.activitybar [aria-label^="UniCode² Lab"]').first().click();
    frame = await lab('.lab-cell[data-status="running"] .slurm-task[data-task="merge"]');
    execFileSync('scontrol', ['release', String(sub.array), String(sub.merge)]);
    frame = await lab('.lab-cell[data-kind="tokenize"][data-status="done"]');
    const cell = frame.locator('.lab-cell[data-kind="tokenize"][data-status="done"]');
    assert.deepEqual(await cell.locator('.slurm-task').evaluateAll((els) => els.map((e) => `${(e as HTMLElement).dataset.task}:${(e as HTMLElement).dataset.state}`)), ['1:done', '2:done', 'merge:done']);
    assert.equal(await cell.locator('dl.metrics dt:text-is("images") + dd').textContent(), '4');
    await workbench!.screenshot('lab-slurm-done');
    for (const name of ['00000.tokens.npy', '00001.tokens.npy', 'manifest.json']) assert.ok(existsSync(join(out(), name)), name);
    // one submission: the reload re-attached, it did not submit again
    assert.equal((await readJobsFile(join(out(), '.slurm')))!.submissions.length, 1);
  });

  test('Run here: the same shards tokenized in the window give the same token sets as the run on Slurm', { timeout: 5 * 60_000 }, async () => {
    const page = workbench!.page;
    await runCommand(page, 'UniCode²: Tokenize Folder…');
    await answerFileDialog(page, ws('laion-here') + '/');
    await pickQuickItem(page, 'Run here');
    const frame = await lab('.lab-cell[data-status="done"] .title >> text="Tokenize 2 shards of laion-here"');
    const cell = frame.locator('.lab-cell', { hasText: 'Tokenize 2 shards of laion-here' });
    assert.equal(await cell.locator('dl.metrics dt:text-is("done") + dd').textContent(), '2');
    assert.equal(await cell.locator('.slurm').count(), 0);
    for (const name of ['00000.tokens.npy', '00001.tokens.npy']) assert.ok(readFileSync(join(out('laion-here'), name)).equals(readFileSync(join(out(), name))), name);
  });

  test('Cancel in the Lab cancels the jobs on Slurm (scancel): the cell ends cancelled, its tasks failed', { timeout: 5 * 60_000 }, async () => {
    const page = workbench!.page;
    await runCommand(page, 'UniCode²: Tokenize Folder…');
    await answerFileDialog(page, ws('laion-cancel') + '/');
    await pickQuickItem(page, 'Run on Slurm');
    const running = '.lab-cell[data-status="running"]';
    let frame = await lab(`${running} .slurm-task[data-task="merge"]`);
    assert.deepEqual(await states(frame, running), ['1:pending', '2:pending', 'merge:pending']);
    const sub = (await readJobsFile(join(out('laion-cancel'), '.slurm')))!.submissions.at(-1)!;
    await frame.locator(`${running} [data-action="cancel"]`).click();
    frame = await lab('.lab-cell[data-status="cancelled"] .slurm-task[data-task="merge"][data-state="failed"]');
    assert.deepEqual(await states(frame, '.lab-cell[data-status="cancelled"]'), ['1:failed', '2:failed', 'merge:failed']);
    const queued = execFileSync('squeue', ['--noheader', '--array', '--format=%F|%T']).toString().split('\n').filter((l) => [String(sub.array), String(sub.merge)].includes(l.split('|')[0]!));
    assert.ok(queued.every((l) => /CANCELLED|COMPLETING/.test(l)), `still queued after Cancel: ${queued.join(', ')}`);
  });

  test('Build from a folder of embedding files on Slurm: the cell shows the plan\'s tasks by stage, and ends with the codebook', { timeout: 5 * 60_000 }, async () => {
    const page = workbench!.page;
    await runCommand(page, 'UniCode²: Build Codebook from Folder…');
    await answerFileDialog(page, ws('emb') + '/');
    // the name box, then the question in the same widget (so it never hides in between)
    const input = page.locator('.quick-input-widget input');
    await page.waitForFunction(() => (document.querySelector('.quick-input-widget input') as HTMLInputElement | null)?.value === 'k16-dct', undefined, { timeout: 30_000 });
    await input.press('Enter');
    await pickQuickItem(page, 'Run on Slurm');
    const running = '.lab-cell[data-kind="build"][data-status="running"]';
    const frame = await lab(`${running} .slurm-task[data-task="final"]`);
    const tasks = await states(frame, running);
    assert.equal(tasks[0], 'coarse:pending');
    assert.equal(tasks.at(-1), 'final:pending');
    assert.ok(tasks.includes('partition-1:pending'), tasks.join(', '));
    const codebook = ws('.unicode2', 'codebooks', 'k16-dct.safetensors');
    const sub = (await readJobsFile(`${codebook}.slurm`))!.submissions.at(-1)!;
    execFileSync('scontrol', ['release', ...sub.chain!.map((c) => String(c.job))]);
    const done = await lab('.lab-cell[data-kind="build"][data-status="done"] .slurm-task[data-task="final"][data-state="done"]');
    const cell = done.locator('.lab-cell[data-kind="build"][data-status="done"]');
    assert.equal(await cell.locator('dl.metrics dt:text-is("K") + dd').textContent(), '16');
    await workbench!.screenshot('lab-slurm-build-done');
    assert.ok(existsSync(codebook));
  });
});

