import type { ClickHouseSettings } from '../servers/index.js';

/**
 * A ClickHouse where nothing listens (port 1), for a PeerDB double in a unit test: the double reaches ClickHouse
 * only to copy a snapshot or validate a peer, which a unit test never asks of it.
 */
export const unreachableClickHouse: ClickHouseSettings = { url: 'http://127.0.0.1:1', nativePort: 1, user: 'default', password: '' };
