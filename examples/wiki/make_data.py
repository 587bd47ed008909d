"""Generate the data for the wiki instant-search example: a MediaWiki-style XML dump and
a titles index holding each article's byte offset in that dump.

    python3 examples/wiki/make_data.py [--out examples/wiki/data] [--articles 500000]
                                       [--mean-bytes 2000] [--seed 1]

Writes OUT/enwiki.xml (``<mediawiki><page>...</page>...</mediawiki>``, about
articles * mean-bytes bytes: 1 GB by default) and OUT/titles.tsv (``title<TAB>offset`` per
line, sorted by title, offset = where the article's ``  <page>`` starts). An article runs
from its offset to the next article's offset (the last one to ``</mediawiki>``), which is
what the server finds with a sorted array of every offset, as the seed's server did.
The output is a pure function of the options (same seed, same bytes). Runs on any
Python 3.9+ (pyparallel or python3).
"""
import argparse
import os
import random
import sys

# A few fixed titles, so a demo and the tests have something to search for.
FIXED_TITLES = ['Python', 'Python (programming language)', 'Pythonidae', 'PyParallel',
                'Parallel computing', 'Global interpreter lock']
LETTERS = 'abcdefghijklmnopqrstuvwxyz'
HEADER = b'<mediawiki xml:lang="en">\n'
FOOTER = b'</mediawiki>\n'


def make_words(rng: random.Random, n: int) -> list[str]:
    words = set()
    while len(words) < n:
        words.add(''.join(rng.choice(LETTERS) for _ in range(rng.randint(3, 10))))
    return sorted(words)


def make_titles(rng: random.Random, n: int) -> list[str]:
    words = make_words(rng, 5000)
    titles = set(FIXED_TITLES[:n])
    while len(titles) < n:
        title = ' '.join(rng.choice(words) for _ in range(rng.randint(1, 3)))
        titles.add(title[0].upper() + title[1:])
    out = sorted(titles)
    rng.shuffle(out)  # articles appear in the dump in no particular order
    return out


def page(title: str, page_id: int, text: bytes) -> bytes:
    t = title.replace('&', '&amp;').replace('<', '&lt;').replace('>', '&gt;').encode()
    return (b'  <page>\n    <title>' + t + b'</title>\n    <id>%d</id>\n'
            b'    <revision>\n      <text xml:space="preserve">' % page_id
            + text + b'</text>\n    </revision>\n  </page>\n')


def generate(out: str, articles: int, mean_bytes: int, seed: int) -> tuple[int, int]:
    """Write the dump and the index; returns (articles, dump size in bytes)."""
    rng = random.Random(seed)
    titles = make_titles(rng, articles)
    # Article bodies are slices of one block of word soup: fast, and no two alike.
    soup_words = make_words(rng, 2000)
    soup = ' '.join(rng.choice(soup_words) for _ in range(400000)).encode()
    os.makedirs(out, exist_ok=True)
    xml_path = os.path.join(out, 'enwiki.xml')
    index = []
    with open(xml_path + '.tmp', 'wb') as f:
        f.write(HEADER)
        offset = len(HEADER)
        for page_id, title in enumerate(titles, 1):
            n = max(16, int(rng.expovariate(1 / mean_bytes)))
            n = min(n, len(soup) // 2)
            start = rng.randrange(0, len(soup) - n)
            body = page(title, page_id, soup[start:start + n])
            f.write(body)
            index.append((title, offset))
            offset += len(body)
        f.write(FOOTER)
    index.sort()
    with open(os.path.join(out, 'titles.tsv.tmp'), 'w', encoding='utf-8') as f:
        for title, off in index:
            f.write(f'{title}\t{off}\n')
    os.replace(xml_path + '.tmp', xml_path)
    os.replace(os.path.join(out, 'titles.tsv.tmp'), os.path.join(out, 'titles.tsv'))
    return len(titles), offset + len(FOOTER)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--out', default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                  'data'))
    ap.add_argument('--articles', type=int, default=500000)
    ap.add_argument('--mean-bytes', type=int, default=2000,
                    help='mean article text size (exponentially distributed)')
    ap.add_argument('--seed', type=int, default=1)
    args = ap.parse_args()
    if args.articles < 1:
        ap.error('--articles must be positive')
    n, size = generate(args.out, args.articles, args.mean_bytes, args.seed)
    print(f'{n} articles, {size} bytes in {os.path.join(args.out, "enwiki.xml")}',
          file=sys.stderr)
    return 0


if __name__ == '__main__':
    sys.exit(main())
