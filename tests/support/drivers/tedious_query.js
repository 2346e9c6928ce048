// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// tedious against the lab server.
// usage: node tedious_query.js PORT ENCRYPT(true|false|strict) USER [DOMAIN] [MODE]
// MODE: query (batch + sp_executesql, default) | cancel (attention during WAITFOR)
//       | reset (RESETCONNECTION after USE) | redirect (report the routing data)
// Environment: LAB_CA = PEM file to trust (strict mode validates the certificate).
// Prints "ROWS <n>", "RPC <value>", "CANCELLED", "DONE" or "ERROR <code> <message>".
let tedious;
try {
  tedious = require('tedious');
} catch (e) {
  console.log('MISSING tedious: ' + e.message);
  process.exit(77);
}
const fs = require('fs');
const { Connection, Request, TYPES } = tedious;
const [port, encryptArg, user, domain, modeArg] = process.argv.slice(2);
const mode = modeArg || 'query';
const encrypt = encryptArg === 'strict' ? 'strict' : encryptArg === 'true';
const authentication = domain
  ? { type: 'ntlm', options: { userName: user, password: 'lab', domain } }
  : { type: 'default', options: { userName: user, password: 'lab' } };
const options = { port: +port, encrypt, trustServerCertificate: true, connectTimeout: 5000,
  requestTimeout: 5000, cancelTimeout: 3000 };
if (process.env.LAB_CA) options.cryptoCredentialsDetails = { ca: fs.readFileSync(process.env.LAB_CA) };
process.on('warning', () => {});
const guard = setTimeout(() => { console.log('ERROR TIMEOUT test guard'); process.exit(3); }, 15000);
const conn = new Connection({ server: '127.0.0.1', authentication, options });
function fail(err) {
  console.log('ERROR ' + (err.code || '') + ' ' + err.message);
  process.exit(1);
}
function finish() {
  console.log('DONE');
  clearTimeout(guard);
  conn.close();
}
conn.on('error', fail);
conn.connect(err => {
  if (err) return fail(err);
  if (mode === 'redirect') {
    console.log('ROUTED ' + (conn.routingData ? conn.routingData.port : 'none'));
  }
  if (mode === 'reset') {
    // A pool handing the connection out again: reset() sends the next batch
    // with the RESETCONNECTION status bit.
    const use = new Request('USE scratch', e => {
      if (e) return fail(e);
      conn.reset(e2 => {
        if (e2) return fail(e2);
        const q = new Request('SELECT DB_NAME()', e3 => (e3 ? fail(e3) : finish()));
        q.on('row', cols => console.log('DB ' + cols[0].value));
        conn.execSqlBatch(q);
      });
    });
    conn.execSqlBatch(use);
    return;
  }
  if (mode === 'cancel') {
    const r = new Request("WAITFOR DELAY '00:00:10'", e => {
      if (e && e.code === 'ECANCEL') { console.log('CANCELLED'); return finish(); }
      fail(e || new Error('WAITFOR finished without being cancelled'));
    });
    conn.execSqlBatch(r);
    setTimeout(() => conn.cancel(), 200);
    return;
  }
  let rows = 0;
  const batch = new Request('SELECT n FROM rows(25)', e => {
    if (e) return fail(e);
    console.log('ROWS ' + rows);
    // execSql sends an RPC: sp_executesql with the statement as a parameter.
    const rpc = new Request('SELECT @x AS seven', e2 => (e2 ? fail(e2) : finish()));
    rpc.addParameter('x', TYPES.Int, 7);
    rpc.on('row', cols => console.log('RPC ' + cols[0].value));
    conn.execSql(rpc);
  });
  batch.on('row', () => rows++);
  conn.execSqlBatch(batch);
});
