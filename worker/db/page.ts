import { pageOf, type Page, type PageParams } from "../schemas/common";

/** A list query: `from`, `where` and `orderBy` are SQL written in code, never input; values go in `args`. */
export interface ListSql {
  select: string;
  from: string;
  where: string;
  args: unknown[];
  orderBy: string;
}

/** One page of a list and the size of the whole list, read in one batch (one consistent snapshot). */
export async function selectPage<T>(db: D1Database, q: ListSql, p: PageParams): Promise<Page<T>> {
  const [count, rows] = await db.batch([
    db.prepare(`SELECT COUNT(*) AS n FROM ${q.from} WHERE ${q.where}`).bind(...q.args),
    db.prepare(`SELECT ${q.select} FROM ${q.from} WHERE ${q.where} ORDER BY ${q.orderBy} LIMIT ? OFFSET ?`).bind(...q.args, p.size, p.page * p.size),
  ]);
  return pageOf(p, (count!.results[0] as { n: number } | undefined)?.n ?? 0, rows!.results as T[]);
}
