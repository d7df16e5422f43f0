Feature: Account controls that hold against one determined person
  As QA I need evidence that nobody can give themselves what they need to sign, that
  passwords are each person's own and current, that guessing is capped, and that user
  ids name exactly one person (21 CFR 11.10(d), 11.10(g), 11.100(a), 11.200(a)(3),
  11.300(b), 11.300(d), 211.192; EU GMP Annex 11 §12).

  Background:
    Given a fresh GxP installation

  @req:11.10g @req:annex11.12
  Scenario: Nobody grants roles to themselves
    When "admin" grants "admin" the roles "Administrator, QA Approver" with reason "covering for QA"
    Then the action is refused with "cannot change their own account"
    When "admin" grants "qa1" the roles "QA Reviewer, QA Approver" with reason "QA lead, HR-12"
    Then the action succeeds
    And the account change of "qa1" is signed "Authorised" by "admin"

  @req:11.10g @req:11.10d
  Scenario: Conflicting roles are refused when granted
    When "admin" grants "op1" the roles "Administrator, Operator" with reason "second admin"
    Then the action is refused with "separation of duties"
    When "admin" grants "op1" the roles "Operator, Supervisor" with reason "shift lead"
    Then the action succeeds

  @req:11.10g @req:11.10e
  Scenario: A role written into the table by SQL is caught and still cannot sign
    When someone gives "admin" the role "QA Approver" with SQL
    Then verification names the "roles" of user "admin"
    When "admin" signs the record "B-1" as "Released"
    Then the action is refused with "separation of duties"
    And no signature of "B-1" exists

  @req:211.192 @req:11.10g
  Scenario: Whoever reviewed a batch cannot also release it
    When "qa2" signs the record "B-7" as "Reviewed"
    And "qa2" signs the record "B-7" as "Released"
    Then the action is refused with "separation of duties"
    When "qa1" signs the record "B-8" as "Reviewed"
    And "qa2" signs the record "B-8" as "Released"
    Then the action succeeds

  @req:11.200a3 @req:11.300b
  Scenario: A password the administrator issued only serves to set one's own
    When "admin" creates user "op7" named "Olaf Operator" with role "Operator" and one-time password "Issued-By-IT-2026!"
    Then the action succeeds
    When "op7" logs in with password "Issued-By-IT-2026!"
    Then the action is refused with "set your own"
    When "op7" signs the record "SOP-7" as "Performed" with password "Issued-By-IT-2026!"
    Then the action is refused with "set your own"
    When "op7" replaces password "Issued-By-IT-2026!" by "Olafs-Own-Pass-26"
    And "op7" signs the record "SOP-7" as "Performed" with password "Olafs-Own-Pass-26"
    Then the action succeeds

  @req:11.300b
  Scenario: An expired password signs nothing
    Given 91 days pass
    When "qa2" signs the record "SOP-9" as "Approved"
    Then the action is refused with "expired"
    And no signature of "SOP-9" exists
    When "qa2" replaces password "Approver-QA-2026!" by "Renewed-Approver-26!"
    And "qa2" signs the record "SOP-9" as "Approved" with password "Renewed-Approver-26!"
    Then the action succeeds

  @req:11.300d
  Scenario: Guesses running in parallel get no more checks than the lockout allows
    Given 3 password checks of "op1" are in progress elsewhere
    When "op1" logs in with password "Guess-Number-Four-1!"
    Then the action is refused with "too many attempts"
    When "op2" logs in with the correct password
    Then the action succeeds

  @req:11.100a
  Scenario: A user id that reads as an existing one is refused
    When "admin" creates user "QA2" named "Paul Approver" with role "QA Reviewer"
    Then the action is refused with "exists or existed"
    When "admin" creates user "qа3" named "Paula Approver" with role "QA Reviewer"
    Then the action is refused with "mixes scripts"
    When "admin" creates user "qa3" named "Paula Approver" with role "QA Reviewer"
    Then the action succeeds

  @req:11.100a @req:11.50
  Scenario: Two people cannot share a printed name
    When "admin" creates user "op8" named "olga operator" with role "Operator"
    Then the action is refused with "already used"
    When "admin" creates user "op8" named "Olga Operator-Berg" with role "Operator"
    Then the action succeeds
