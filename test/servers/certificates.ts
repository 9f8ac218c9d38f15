import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

export interface TestCertificates {
  /** The CA that signed the server and client certificates (PEM file, and its text). */
  caFile: string;
  ca: string;
  /** The servers' certificate, for localhost and 127.0.0.1, and its key. */
  serverCertFile: string;
  serverKeyFile: string;
  /** A client certificate (CN echodb) and its key, signed by the same CA. */
  clientCertFile: string;
  clientKeyFile: string;
  /** Another CA, which signed nothing here: a client that trusts only it must refuse the servers. */
  otherCaFile: string;
}

const OPENSSL_HINT = 'apt-get install -y openssl (or: bash scripts/install.sh)';

/** A throwaway CA and the certificates it signs, made with openssl in `dir` (valid for 2 days). */
export function makeTestCertificates(dir: string): TestCertificates {
  fs.mkdirSync(dir, { recursive: true });
  const file = (name: string) => path.join(dir, name);
  const openssl = (...args: string[]) => {
    try {
      execFileSync('openssl', args, { stdio: 'pipe', cwd: dir });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
        throw new Error(`openssl is not installed: ${OPENSSL_HINT}`, { cause: error });
      }
      const stderr = (error as { stderr?: Buffer }).stderr?.toString() ?? String(error);
      throw new Error(`openssl ${args[0]} failed: ${stderr}`, { cause: error });
    }
  };
  const newCa = (name: string, subject: string) =>
    openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-sha256', '-days', '2', '-subj', subject,
      '-keyout', file(`${name}.key`), '-out', file(`${name}.pem`));
  const signed = (name: string, subject: string, extensions: string) => {
    fs.writeFileSync(file(`${name}.ext`), extensions);
    openssl('req', '-newkey', 'rsa:2048', '-nodes', '-sha256', '-subj', subject, '-keyout', file(`${name}.key`), '-out', file(`${name}.csr`));
    openssl('x509', '-req', '-sha256', '-days', '2', '-in', file(`${name}.csr`), '-CA', file('ca.pem'), '-CAkey', file('ca.key'),
      '-CAcreateserial', '-extfile', file(`${name}.ext`), '-out', file(`${name}.pem`));
  };
  newCa('ca', '/CN=EchoDB test CA');
  newCa('other-ca', '/CN=Another CA');
  signed('server', '/CN=localhost', 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  signed('client', '/CN=echodb', 'extendedKeyUsage=clientAuth\n');
  // Servers refuse a private key that others can read.
  for (const key of ['server.key', 'client.key']) fs.chmodSync(file(key), 0o600);
  return {
    caFile: file('ca.pem'),
    ca: fs.readFileSync(file('ca.pem'), 'utf8'),
    serverCertFile: file('server.pem'),
    serverKeyFile: file('server.key'),
    clientCertFile: file('client.pem'),
    clientKeyFile: file('client.key'),
    otherCaFile: file('other-ca.pem'),
  };
}
