/**
 * Lists that walk every page when iterated, as the openai and stripe SDKs do:
 * `for await (const t of client.tokens.list())` yields every token, fetching the next page
 * (`next_cursor`) when the current one is used up; `await client.tokens.list()` is the
 * first {@link Page} (`items`, `next_cursor`, `hasNextPage()`, `nextPage()`).
 */

import type { PageData } from "./types.js";

/** Fetches the page at a cursor (`undefined`: the first). */
export type FetchPage<T> = (cursor: string | undefined) => Promise<PageData<T>>;

/** One page of a list; `for await` over it yields every item of every page from here. */
export class Page<T> implements AsyncIterable<T> {
  readonly items: T[];
  readonly next_cursor: string | null;
  readonly #fetch: FetchPage<T>;
  readonly #cursor: string | undefined;

  constructor(data: PageData<T>, fetch: FetchPage<T>, cursor: string | undefined) {
    this.items = data.items ?? [];
    this.next_cursor = data.next_cursor ?? null;
    this.#fetch = fetch;
    this.#cursor = cursor;
  }

  /** Whether another page follows (a server repeating the cursor would loop: it stops). */
  hasNextPage(): boolean {
    return Boolean(this.next_cursor) && this.next_cursor !== this.#cursor;
  }

  /** The next page, or `null` after the last. */
  async nextPage(): Promise<Page<T> | null> {
    if (!this.hasNextPage() || this.next_cursor === null) return null;
    const cursor = this.next_cursor;
    return new Page(await this.#fetch(cursor), this.#fetch, cursor);
  }

  /** This page and every page after it. */
  async *iterPages(): AsyncGenerator<Page<T>> {
    let page: Page<T> | null = this;
    while (page !== null) {
      yield page;
      page = await page.nextPage();
    }
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<T> {
    for await (const page of this.iterPages()) yield* page.items;
  }

  /** The API's page object (`{items, next_cursor}`). */
  toJSON(): PageData<T> {
    return { items: this.items, next_cursor: this.next_cursor };
  }
}

/** What a list method returns: a `Promise` of the first page (`await` it), and an async
 * iterable over every item of every page (`for await`). The first page is requested at
 * once, as a `Promise` would. */
export class PagePromise<T> extends Promise<Page<T>> implements AsyncIterable<T> {
  // `then`/`catch` make plain promises, not more PagePromises.
  static override get [Symbol.species](): PromiseConstructor {
    return Promise;
  }

  constructor(fetch: FetchPage<T>, cursor: string | undefined) {
    super((resolve, reject) => {
      fetch(cursor).then((data) => resolve(new Page(data, fetch, cursor)), reject);
    });
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<T> {
    yield* await this;
  }
}
