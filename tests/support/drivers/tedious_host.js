// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// Preloaded (node -r) before tests/lab/drivers/tedious_query.js, which connects
// to 127.0.0.1: replaces that address by $E2E_SERVER_HOST, the lab server in
// the other network namespace. The driver script itself runs unchanged.
const Module = require('module');
const host = process.env.E2E_SERVER_HOST;
const load = Module._load;
let patched;
Module._load = function (request, parent, isMain) {
  const m = load.apply(this, arguments);
  if (request !== 'tedious' || !host) return m;
  if (!patched) {
    class Connection extends m.Connection {
      constructor(config) {
        if (config && config.server === '127.0.0.1') config = { ...config, server: host };
        super(config);
      }
    }
    patched = { ...m, Connection };
  }
  return patched;
};

// Redirect targets: the lab server recognises itself in a routing target
// only as 127.0.0.1 or localhost, so the tests route to "localhost:<port>";
// from the client's namespace that name means the server's address.
const dns = require('dns');
const lookup = dns.lookup;
dns.lookup = function (hostname, ...rest) {
  return lookup.call(this, hostname === 'localhost' && host ? host : hostname, ...rest);
};
