import type Database from 'better-sqlite3';

/**
 * Makes `db.prepare` remember what it prepared. Main runs the same few dozen statements
 * for every request, and preparing one costs more than running it: 2,000 small files
 * spent 0.25 s of main's CPU preparing. Every SQL text in the stores is a constant, so
 * the cache stays small. A cached statement is shared, so the pluck mode a caller sets is
 * cleared each time the statement is handed out again. (No statement is iterated, so no
 * caller finds one busy.)
 */
export function cacheStatements(db: Database.Database): void {
  const prepare = db.prepare.bind(db);
  const cache = new Map<string, Database.Statement>();
  db.prepare = ((sql: string) => {
    let stmt = cache.get(sql);
    if (!stmt) {
      stmt = prepare(sql);
      cache.set(sql, stmt);
    }
    return stmt.reader ? stmt.pluck(false) : stmt;
  }) as typeof db.prepare;
}
