// The token set editor's search by words: for a token data set that keeps its images' pooled
// embeddings (tokenize --pooled), a text is embedded by the encoder's own text tower and the
// images are ranked by cosine similarity (engine/search/text-search.ts), each shown with its grid,
// with the codes the best of them share. No 'vscode' here: the editor passes in how a text tower
// is opened (consent, backend, download notification) and how a grid is shown, so the webview
// tests serve the editor exactly what the extension does.
import { rankByText, readPooledEmbeddings, sharedCodes, UserError, type Precision, type PooledRecord, type TextEncoder, type TokenGrid, type Matrix } from '../engine/index.js';
import type { TokenSetGrid, TokenSetSearch, TokenSetView } from '../../common/protocol/tokens.js';

/** Images a search shows, and shared codes it lists. */
export const SEARCH_HITS = 12;
export const SHARED_CODES = 12;

export type OpenTextTower = (encoder: string, precision: Precision) => Promise<TextEncoder>;

interface Pooled {
  embeddings: Matrix;
  record: PooledRecord;
  encoder: string;
}

/** One set's search: its pooled embeddings read once, its text tower opened at the first search. */
export class TokenSetSearcher {
  private pooled: Promise<Pooled | null> | null = null;
  private tower: Promise<TextEncoder> | null = null;

  constructor(private readonly file: string, private readonly open: OpenTextTower) {}

  private read(): Promise<Pooled | null> {
    return (this.pooled ??= readPooledEmbeddings(this.file));
  }

  /** What the view says of the search: absent when the set keeps no pooled embeddings. */
  async view(): Promise<Pick<TokenSetView, 'textSearch'>> {
    const p = await this.read();
    return p ? { textSearch: { encoder: p.encoder, output: p.record.output, d: p.record.d } } : {};
  }

  async search(query: string, grids: readonly TokenGrid[], gridOf: (index: number) => Promise<TokenSetGrid>): Promise<TokenSetSearch> {
    const p = await this.read();
    if (!p) throw new UserError(`${this.file} keeps no pooled image embeddings to search by words`, { cli: 'tokenize the images again with --pooled', vscode: 'tokenize the folder again (Tokenize Folder keeps them when the codebook\'s model has a pooled output)' });
    if (p.embeddings.rows !== grids.length) throw new UserError(`${this.file}: ${p.embeddings.rows} pooled embeddings for ${grids.length} grids; tokenize again`);
    if (!this.tower) {
      this.tower = this.open(p.encoder, p.record.precision as Precision);
      this.tower.catch(() => (this.tower = null));
    }
    const tower = await this.tower;
    const hits = rankByText(p.embeddings, (await tower.embed([query])).data, SEARCH_HITS);
    const shown = await Promise.all(hits.map(async (h) => ({ grid: await gridOf(h.index), score: h.score })));
    const model = `${tower.model.repo ? `${tower.model.repo}@${tower.model.revision!.slice(0, 12)}, ` : ''}${tower.model.file} (${tower.output}) on ${tower.device}`;
    return { query, hits: shown, shared: sharedCodes(grids, hits, SHARED_CODES), model };
  }

  /** The set was rewritten: read it again at the next use (the text tower stays). */
  reset(): void {
    this.pooled = null;
  }

  async dispose(): Promise<void> {
    const tower = this.tower;
    this.tower = null;
    await tower?.then((t) => t.dispose(), () => undefined);
  }
}
