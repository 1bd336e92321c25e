// The Lab cell of a run on Slurm, in headless Chromium: each task's state as the job folder says
// (pending, running, done, failed with its error and log's last lines, the merge step last), the
// count of each, a log button per task that asks the host for that task's log, and Cancel.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { openPanel, closeBrowser, until } from './harness.js';
import { labProtocol, type LabCell } from '../../common/protocol/lab.js';

after(closeBrowser);

const FOLDER = '/scratch/researcher/.unicode2/tokens/laion.k1024-dct.tokens/.slurm';

function slurmCell(): LabCell {
  return {
    id: 'slurm1', kind: 'tokenize', status: 'running', title: 'Tokenize 8 shards of laion on Slurm', startedAt: '2026-01-15T10:00:00Z',
    inputs: { folder: '/scratch/researcher/laion', codebook: '/scratch/researcher/.unicode2/codebooks/k1024-dct.safetensors' },
    params: { search: 'auto', on: 'Slurm' }, progress: { done: 2, total: 4, message: 'slurm tasks 2 of 4' },
    slurm: {
      folder: FOLDER, jobs: [4242, 4243],
      tasks: [
        { task: 1, state: 'done', job: '4242_1', shards: 2, images: 20000 },
        { task: 2, state: 'running', job: '4242_2', shards: 2 },
        { task: 3, state: 'pending', job: '', shards: 2 },
        {
          task: 4, state: 'failed', job: '4242_4', shards: 2, error: 'ended without finishing (CANCELLED)',
          tail: 'unicode2: shard laion/00003.tar: 412 of 10000\nslurmstepd: error: *** JOB 4246 ON node7 CANCELLED AT 2026-01-15T10:04:11 ***',
        },
        { task: 'merge', state: 'pending', job: '', shards: 8 },
      ],
    },
  };
}

test('a run on Slurm: each task\'s state, the counts, a failed task\'s error and log tail; the log and Cancel buttons ask the host', async () => {
  const cell = slurmCell();
  const ok = () => null;
  const p = await openPanel('lab', labProtocol, 'dark', { init: () => [cell], run: ok, rerun: ok, open: ok, cancel: ok, remove: ok, log: ok }, { width: 300, height: 560 });
  try {
    const tasks = p.page.locator('.lab-cell[data-id="slurm1"] .slurm-task');
    await tasks.first().waitFor();
    const rows = await tasks.evaluateAll((els) => els.map((e) => `${(e as HTMLElement).dataset.task}:${(e as HTMLElement).dataset.state}`));
    assert.deepEqual(rows, ['1:done', '2:running', '3:pending', '4:failed', 'merge:pending']);
    // the merge step is not an array task: it is not counted
    assert.equal(await p.page.locator('.slurm-summary').textContent(), 'Slurm jobs 4242, 4243: 1 pending, 1 running, 1 done, 1 failed');
    assert.match((await tasks.nth(0).locator('.what').textContent())!, /4242_1 · 2 shards · 20000 images/);
    assert.match((await tasks.nth(2).locator('.what').textContent())!, /^pending · 2 shards$/);
    const failed = tasks.nth(3);
    assert.equal(await failed.locator('.error').textContent(), 'ended without finishing (CANCELLED)');
    assert.match((await failed.locator('pre.tail').textContent())!, /CANCELLED AT/);
    await p.screenshot('lab-slurm-dark');

    // every task has its log one click away; Cancel is the running cell's only other action
    assert.equal(await p.page.locator('.lab-cell[data-id="slurm1"] [data-action="log"]').count(), 5);
    assert.deepEqual(await p.page.locator('.lab-cell[data-id="slurm1"] header [data-action]').evaluateAll((els) => els.map((e) => (e as HTMLElement).dataset.action)), ['cancel']);
    await failed.locator('[data-action="log"]').click();
    await tasks.nth(4).locator('[data-action="log"]').click();
    await p.page.locator('.lab-cell[data-id="slurm1"] [data-action="cancel"]').click();
    await until(() => p.posted.filter((m) => m.kind === 'request').length === 4, 'init and three requests');
    const requests = p.posted.flatMap((m) => (m.kind === 'request' ? [{ type: m.type, ...(m.params as object) }] : []));
    assert.deepEqual(requests.slice(1), [{ type: 'log', cell: 'slurm1', task: 4 }, { type: 'log', cell: 'slurm1', task: 'merge' }, { type: 'cancel', cell: 'slurm1' }]);

    // the host's next view: the task that was pending runs, then the run ends cancelled
    const next = { ...cell, slurm: { ...cell.slurm!, tasks: cell.slurm!.tasks.map((t) => (t.task === 3 ? { ...t, state: 'running' as const, job: '4242_3' } : t)) } };
    await p.post({ kind: 'notify', type: 'cells', params: { cells: [next] } });
    await p.page.locator('.slurm-task[data-task="3"][data-state="running"]').waitFor();
    assert.equal(await p.page.locator('.slurm-summary').textContent(), 'Slurm jobs 4242, 4243: 0 pending, 2 running, 1 done, 1 failed');
    await p.post({ kind: 'notify', type: 'cells', params: { cells: [{ ...next, status: 'cancelled', progress: undefined, error: 'UniCode²: Tokenize 8 shards of laion on Slurm cancelled' }] } });
    await p.page.locator('.lab-cell[data-id="slurm1"][data-status="cancelled"]').waitFor();
    // a finished run's tasks stay readable, logs included
    assert.equal(await p.page.locator('.lab-cell[data-id="slurm1"] [data-action="log"]').count(), 5);
    assert.equal(p.warnings.length, 0, p.warnings.join('\n'));
  } finally {
    await p.close();
  }
});
