// One node of a clustered MQTT broker for Jarvis's lease tests: Aedes (MIT) sharing messages
// through Redis with mqemitter-redis (MIT) and retained messages, sessions and last wills with
// aedes-persistence-redis (MIT), as Aedes documents its cluster set-up. Started by
// tests/common/aedes.rs; installed by `scripts/bootstrap.sh --test` (npm ci here).
//
//   node aedes_node.js <mqtt port> <redis port> <node id> [heartbeat ms]
//
// Prints `ready <port>` once it accepts MQTT connections. The heartbeat sets how soon the
// other nodes publish the last wills of a node that died (Aedes: after 3 to 4 heartbeats).
import { createServer } from 'node:net'
import { Aedes } from 'aedes'
import mqemitterRedis from 'mqemitter-redis'
import persistenceRedis from 'aedes-persistence-redis'

const [portArg, redisArg, id, heartbeatArg] = process.argv.slice(2)
const port = Number(portArg)
const redisPort = Number(redisArg)
const heartbeatInterval = Number(heartbeatArg ?? 1000)
if (!port || !redisPort || !id || !heartbeatInterval) {
  console.error('usage: node aedes_node.js <mqtt port> <redis port> <node id> [heartbeat ms]')
  process.exit(2)
}

const redis = { host: '127.0.0.1', port: redisPort }
const mq = mqemitterRedis(redis)
const persistence = persistenceRedis(redis)
const broker = await Aedes.createBroker({ id, mq, persistence, heartbeatInterval })
broker.on('clientError', (client, err) => console.error(`client ${client.id}: ${err.message}`))
broker.on('error', (err) => console.error(`broker: ${err.message}`))

const server = createServer(broker.handle)
server.listen(port, '127.0.0.1', () => console.log(`ready ${port}`))

const stop = () => server.close(() => broker.close(() => process.exit(0)))
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
