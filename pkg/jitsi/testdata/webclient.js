// Derives room names the way the Jitsi web client does (jitsi-meet
// react/features/base/util/uri.ts), so that Go tests can compare
// jitsi-signer's derivation with a JavaScript engine's own NFKC,
// toLowerCase and encodeURIComponent.
//
// Input on stdin: a JSON array of strings. Output: a JSON array of
// {"segment": <room the client joins for a URL whose last path segment is the
// input>, "name": <the client's backend-safe form of the input as a plain
// room name>}.
const excluded = /[\:\?#\[\]@!$&'()*+,;=></"]/g;

function backendSafe(room) {
  try {
    room = decodeURIComponent(room);
  } catch (e) {
    // Not encoded: kept as is, as the client does.
  }
  return encodeURIComponent(room.normalize('NFKC').toLowerCase()).toLowerCase();
}

let input = '';
process.stdin.on('data', (d) => { input += d; });
process.stdin.on('end', () => {
  const out = JSON.parse(input).map((s) => ({
    segment: backendSafe(s.replace(excluded, '')),
    name: encodeURIComponent(s.normalize('NFKC').toLowerCase()).toLowerCase(),
  }));
  process.stdout.write(JSON.stringify(out));
});
