// Verifies an HS256 JWT with jsrsasign. Reads {"token", "secret"} as JSON on stdin; the
// secret is given as UTF-8 explicitly (a plain string that looks like hex would be read
// as hex bytes). Prints {"valid": bool, "payload": object}.
import { readFileSync } from 'node:fs'
import jsrsasign from 'jsrsasign'

const { token, secret } = JSON.parse(readFileSync(0, 'utf8'))
const { KJUR } = jsrsasign
const valid = KJUR.jws.JWS.verifyJWT(token, { utf8: secret }, { alg: ['HS256'] })
const payload = KJUR.jws.JWS.readSafeJSONString(jsrsasign.b64utoutf8(token.split('.')[1]))
process.stdout.write(JSON.stringify({ valid, payload }))
