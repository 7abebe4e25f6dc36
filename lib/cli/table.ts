/**
 * Plain-text tables for command output (`openme list`, `openme sessions`).
 *
 * @module
 */

/** Space between two columns. */
const COLUMN_GAP = "  ";

/**
 * Lays out rows (the first is usually the header) in columns padded to the
 * widest cell; the last column is not padded. Returns one line per row.
 */
export function formatTable(rows: readonly (readonly string[])[]): string[] {
  if (rows.length === 0) return [];
  const widths = rows[0].map((_, i) =>
    Math.max(...rows.map((row) => row[i].length))
  );
  return rows.map((row) =>
    row.map((cell, i) => i === row.length - 1 ? cell : cell.padEnd(widths[i]))
      .join(COLUMN_GAP)
  );
}
