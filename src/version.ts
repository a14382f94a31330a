import { readFileSync } from 'node:fs';

// dist/src/version.js → the package root's package.json.
export const PACKAGE_VERSION: string = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')).version;
