import { InvalidArgumentError } from 'commander';
import type { TableRef } from '../workflows/model.js';

/**
 * Reads `schema.table` as PostgreSQL reads a qualified name: an unquoted part is folded to lower case, a
 * double-quoted one is taken exactly ("" stands for a quote), so `public."Odd.Name"` names the table Odd.Name.
 */
export function parseTableArgument(text: string): TableRef {
  const parts: string[] = [];
  let current = '';
  let quoted = false;
  let partQuoted = false;
  for (let i = 0; i < text.length; i++) {
    const char = text[i]!;
    if (quoted) {
      if (char === '"' && text[i + 1] === '"') {
        current += '"';
        i++;
      } else if (char === '"') {
        quoted = false;
      } else {
        current += char;
      }
    } else if (char === '"') {
      quoted = true;
      partQuoted = true;
    } else if (char === '.') {
      parts.push(partQuoted ? current : current.toLowerCase());
      current = '';
      partQuoted = false;
    } else {
      current += char;
    }
  }
  if (quoted) throw new InvalidArgumentError(`${text}: a double quote is not closed`);
  parts.push(partQuoted ? current : current.toLowerCase());
  if (parts.length !== 2 || parts.some((part) => part === '')) {
    throw new InvalidArgumentError(`${text}: expected schema.table (quote a part that has dots or capitals: public."My.Table")`);
  }
  return { schema: parts[0]!, table: parts[1]! };
}
