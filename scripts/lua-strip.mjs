// Lua source as it is sent to Redis: without comments, indentation or blank lines, so that
// bundles and EVAL requests carry only code. String literals are kept byte for byte. The SHA1
// shipped with a script is the SHA1 of this text (scripts/embed-lua.mjs).

/** Index just past the long bracket `[==[ … ]==]` opening at `i`, or -1 when none opens there. */
function longBracketEnd(text, i) {
  const open = /^\[(=*)\[/.exec(text.slice(i, i + 64));
  if (!open) return -1;
  const close = text.indexOf(`]${open[1]}]`, i + open[0].length);
  if (close < 0) throw new Error(`unterminated long bracket at offset ${i}`);
  return close + open[1].length + 2;
}

export function stripLua(text) {
  let out = '';
  let code = '';
  const flush = () => {
    // Whitespace around line breaks in code goes; a line break stays (it may end a statement).
    out += code.replace(/[ \t]*\n\s*/g, '\n');
    code = '';
  };
  for (let i = 0; i < text.length; ) {
    const c = text[i];
    if (c === '-' && text[i + 1] === '-') {
      const end = longBracketEnd(text, i + 2);
      if (end >= 0) i = end;
      else {
        const eol = text.indexOf('\n', i);
        i = eol < 0 ? text.length : eol;
      }
      continue;
    }
    const long = c === '[' ? longBracketEnd(text, i) : -1;
    if (long >= 0 || c === '"' || c === "'") {
      let end = long;
      if (end < 0) {
        end = i + 1;
        while (end < text.length && text[end] !== c) {
          if (text[end] === '\n') throw new Error(`unterminated string at offset ${i}`);
          end += text[end] === '\\' ? 2 : 1;
        }
        end++;
      }
      flush();
      out += text.slice(i, end);
      i = end;
      continue;
    }
    code += c;
    i++;
  }
  flush();
  return out.replace(/^\n+/, '').replace(/[ \t]+$/gm, '').replace(/\n+$/, '\n');
}
