// Signs a Meeting SDK JWT the way Zoom's meetingsdk-auth-endpoint-sample does:
// jsrsasign's KJUR.jws.JWS.sign over JSON.stringify'd header and payload, the secret
// passed as the plain string. Reads {"secret", "sdkKey", "meetingNumber", "role",
// "expirationSeconds", "videoWebRtcMode", "iat"} as JSON on stdin; prints the token.
import { readFileSync } from 'node:fs'
import jsrsasign from 'jsrsasign'

const input = JSON.parse(readFileSync(0, 'utf8'))
const iat = input.iat ?? Math.floor(Date.now() / 1000)
const exp = iat + (input.expirationSeconds ?? 7200)
const payload = {
  appKey: input.sdkKey,
  sdkKey: input.sdkKey,
  mn: input.meetingNumber,
  role: input.role,
  iat,
  exp,
  tokenExp: exp,
  video_webrtc_mode: input.videoWebRtcMode
}
const header = JSON.stringify({ alg: 'HS256', typ: 'JWT' })
process.stdout.write(jsrsasign.KJUR.jws.JWS.sign('HS256', header, JSON.stringify(payload), input.secret))
