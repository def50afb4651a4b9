import { test } from 'tap'
import { ChannelHub } from '../plugin/channels/hub'
import { FakeMember } from './helpers/members'

// The hub keeps each member's channels on the member itself; a frozen member (which cannot take the
// property) is kept aside. Both must behave the same.
for (const frozen of [false, true]) {
  test(`a ${frozen ? 'frozen' : 'plain'} member's groups: joining order, leave, leaveAll, one copy, nothing after close`, async (t) => {
    const hub = new ChannelHub()
    const member = new FakeMember('alice')
    if (frozen) Object.freeze(member)
    await hub.join(member, 'a')
    await hub.join(member, 'b')
    await hub.join(member, 'a')
    t.same(hub.groupsOf(member), ['a', 'b'], 'in joining order, once each')
    await hub.broadcast(['a', 'b'], { n: 1 })
    t.equal(member.received.length, 1, 'one copy for a member of both groups')
    await hub.leave(member, 'a')
    t.same(hub.groupsOf(member), ['b'])
    await hub.sendToUser('alice', { n: 2 })
    t.equal(member.received.length, 2, 'still reachable as its user')
    await hub.leaveAll(member)
    t.same(hub.groupsOf(member), [])
    await hub.broadcast('b', { n: 3 })
    await hub.sendToUser('alice', { n: 4 })
    t.equal(member.received.length, 2, 'nothing after leaveAll')
    await hub.join(member, 'c')
    await hub.close()
    t.same(hub.groupsOf(member), [], 'a closed hub forgets every membership')
  })
}
