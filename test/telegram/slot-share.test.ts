// Slots a running broadcast lends to send jobs of its process (SlotShare): who may take which.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { SlotShare } from '../../src/telegram/slot-share.js';

const at = (now: number, ...offsets: number[]) => offsets.map((o) => now + o);

test('a send job takes the earliest slot the broadcast has not reached, never the one it is sending at', () => {
  const share = new SlotShare();
  const now = 1_000_000;
  const lender = share.lend(at(now, 5, 10, 15, 20), 30, 0);
  lender.next = 1; // the broadcast waits for the slot at +10
  assert.is(share.borrow(30, 0, now), now + 15);
  assert.is(share.borrow(30, 0, now), now + 20);
  assert.is(share.borrow(30, 0, now), null, 'every slot after the broadcast is taken');
  assert.equal([...lender.taken].sort(), [2, 3]);
});

test('a slot already passed is not lent: the broadcast skips it as missed', () => {
  const share = new SlotShare();
  const now = 1_000_000;
  share.lend(at(now, -30, -20, -10, 40), 30, 0);
  assert.is(share.borrow(30, 0, now), now + 40);
});

test('a late wake may take a slot passed by no more than the lateness a send is allowed', () => {
  const share = new SlotShare();
  const now = 1_000_000;
  const lender = share.lend(at(now, -30, -20, -8, -4, 10), 30, 0);
  lender.next = 0; // the broadcast, late too, still waits for its slot at -30
  assert.is(share.borrow(30, 0, now, 10), now - 8, 'the earliest slot within 10 ms');
  assert.is(share.borrow(30, 0, now, 10), now - 4);
  assert.is(share.borrow(30, 0, now), now + 10, 'without the lateness only slots still to come');
});

test('only a send job of the same rate and of at least the broadcast job priority borrows', () => {
  const share = new SlotShare();
  const now = 1_000_000;
  share.lend(at(now, 10, 20, 30), 30, 0);
  assert.not.ok(share.lends(30, -10), 'a low-priority backlog must not starve the broadcast');
  assert.is(share.borrow(30, -10, now), null);
  assert.not.ok(share.lends(1000, 0), 'a paid send is paced at another spacing');
  assert.is(share.borrow(1000, 0, now), null);
  assert.ok(share.lends(30, 5));
  assert.is(share.borrow(30, 5, now), now + 20);
});

test('a withdrawn batch lends nothing, and the slots left unused at its end exclude the lent ones', () => {
  const share = new SlotShare();
  const now = 1_000_000;
  const lender = share.lend(at(now, 10, 20, 30, 40, 50), 30, 0);
  assert.is(share.borrow(30, 0, now), now + 20); // index 1
  assert.is(lender.unusedAfter(1), 3, 'slots 2-4 are nobody\'s');
  lender.taken.add(3);
  assert.is(lender.unusedAfter(1), 1, 'only slot 4 may go back to the timeline: slot 3 is a send job\'s');
  share.withdraw(lender);
  assert.not.ok(share.lends(30, 0));
  assert.is(share.borrow(30, 0, now), null);
});

test.run();
